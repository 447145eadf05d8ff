"""The video job: the warm-start chain over a clip's frames, with resume, window batching,
decode/encode threads and --devices workers.

  plan.py     frames -> steps (full, scene cut, warm windows) with their flows; the decode side
  chain.py    the chain: steps -> stylised frames, carrying the previous output
  workdir.py  the resume folder of finished frames
  threads.py  decoding ahead and saving/encoding behind the optimisation
  job.py      one clip in this process: stylise_video
  devices.py  one clip over several devices: stylise_video_on_devices
"""
