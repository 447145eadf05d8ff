"""The folder job: every image and video under a folder, stylised into the same tree under an
output folder. Built to run from cron: resumable, lock-protected, and it tells a pipeline exactly
what happened.

  naming.py    the outputs the files found by the walk (media/walk.py) get
  manifest.py  what earlier runs finished: the manifest and its journal
  lock.py      one run per output folder
  plan.py      skip, do or fail, per file; units of work (videos alone, images by working size)
  run.py       run the units, record each file, the summary and the report: run_folder
"""
