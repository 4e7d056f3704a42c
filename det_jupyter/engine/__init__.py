"""The engine: everything between a validated config and Dask.

``controller`` runs one experiment's loop; ``cluster`` / ``gpu`` make or join the Dask cluster and
count its slots; ``definition`` / ``presubmit`` freeze the notebook's model code by value.
"""
