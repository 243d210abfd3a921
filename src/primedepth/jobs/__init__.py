"""Jobs: a pipeline run over many inputs, with the outputs written and every failure named.

``predict_files`` (depth maps and products for image files), ``label_files`` (pseudo-labels for pre-training
images) and ``video`` (a depth video per clip) are what ``primedepth predict``, ``pseudo-label`` and ``video``, the
app and the shard workers call: the commands parse options, load the model and report; the jobs do the work.
"""
