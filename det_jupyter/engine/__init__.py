"""The engine: everything between a validated config and Dask.

``controller`` runs one experiment's loop (``write_behind`` buffers its rows); ``runs`` holds its
typed trial / run records and decisions; ``lifecycle`` the pure completion / restart / stop / pause
rules; ``launcher`` the only Dask calls of a running experiment; ``cluster`` makes or joins the Dask
cluster and names the slot resource; ``definition`` / ``presubmit`` freeze the notebook's model code
by value.
"""
