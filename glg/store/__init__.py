"""The formats passed between stages, each read and written in one module: frames
(`frames`, `writers`), annotations, prepared data, videos in and out (`video`, `video_writer`),
training checkpoints (`checkpoint`) and the trained-network files (`networks`).
"""
