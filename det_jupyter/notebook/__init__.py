"""The notebook front door: ``%%det_experiment`` / ``%det`` magics, text and HTML reports, and the live
``ExperimentWidget`` (``widget/``). Everything here reads the store; nothing here runs trials.
"""
