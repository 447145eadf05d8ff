"""The video job: one orchestrator of a clip (lay out, dispatch, store, stitch) over interchangeable
executors, and the warm-start chain each segment runs.

  clip.py          the frames a job stylises (--start/--end), and the thumbnail scan
  pieces.py        the clip laid out for work: pieces (parallel chains), segments, seams
  orchestrator.py  one clip on any executor: stylise_clip (stylise_video: in this process)
  contract.py      the executor contract (a Protocol) and its base class of defaults
  executors.py     in this process (InProcess) and one process per device (Devices); Ray's is cluster/video.py
  segment.py       one segment where the device is: decode its range, stylise, encode
  stream.py        the chain over a stream of frames (stylise_frames), and the clip's estimate
  plan.py          frames -> steps (full, scene cut, warm windows) with their flows; the decode side
  chain.py         the chain: steps -> stylised frames, carrying the previous output
  workdir.py       the resume folder: stored segments, raw frames, frames of a segment in progress
  threads.py       decoding ahead and saving/encoding behind the optimisation

The words that divide a clip's time, largest first:

  span      the frames of the input a job stylises: all, or --start/--duration/--end (FrameSpan)
  piece     a run of the span that one chain covers, beside the others (one per worker at most),
            cut at a scene cut, else mid-shot with a lead-in
  lead-in   frames before a piece's first own frame that its chain runs through to arrive warm;
            not counted as done, and cross-faded at the seam
  seam      where a piece led in mid-shot meets the piece before it: the frames of the lead-in,
            the earlier piece's outputs cross-faded into the later's, encoded as a part of their own
  segment   a piece cut into at most segment_frames (240) frames: the unit that is dispatched to
            a worker, encoded, stored and resumed
  part      what the join reads, in clip order: the segments and seams (ClipLayout.parts)
  anchor    the output of the frame before a segment ((h, w, 3) uint8), from which the segment
            continues its piece's chain
  range     frames decoded together: a segment's own decode (Clip.part), or a share of the scan
            split over Ray workers (scan_ranges)
  step      what plan.py makes of frames: a full optimisation (a first frame, a scene cut) or a
            warm window with its flows
  window    the frames one optimisation pass takes together (--batch; batching.window_batch)
  unit      not a video word: a folder job's item of work (one video, or images of one working
            size up to --batch; folder/triage.py)
  chunk     not a video word: the items of one pass of batching.in_batches (a window's frames,
            a unit's images)
"""
