"""The video job: one orchestrator of a clip (plan, dispatch, store, stitch) over interchangeable
executors, and the warm-start chain each segment runs.

  clip.py          the frames a job stylises (--start/--end), and the thumbnail scan
  pieces.py        the clip cut for work: pieces (parallel chains), segments, seams
  orchestrator.py  one clip on any executor: stylise_clip (stylise_video: in this process)
  executors.py     in this process (InProcess) and one process per device (Devices); Ray's is cluster/video.py
  segment.py       one segment where the device is: decode its range, stylise, encode
  job.py           the chain over a stream of frames (stylise_frames), and the clip's estimate
  plan.py          frames -> steps (full, scene cut, warm windows) with their flows; the decode side
  chain.py         the chain: steps -> stylised frames, carrying the previous output
  workdir.py       the resume folder: stored segments, raw frames, frames of a segment in progress
  threads.py       decoding ahead and saving/encoding behind the optimisation
"""
