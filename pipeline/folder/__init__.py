"""The folder job: every image and video under a folder, stylised into the same tree under an
output folder. Built to run from cron: resumable, lock-protected (pipeline/lock.py), and it tells
a pipeline exactly what happened.

  naming.py    the outputs the files found by the walk (media/walk.py) get
  manifest.py  what earlier runs finished: the manifest and its journal
  triage.py    skip, do or fail, per file; units of work (videos alone, images by working size)
  job.py       a job's work: the stop check, images in this process, videos, each file's bookkeeping
  run.py       the one loop over the units on any backend, the summary and the report: run_folder
"""
