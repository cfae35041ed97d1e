"""Face geometry and detectors that several stages share: landmark semantics and conventions
(`landmarks`), the 3D mean face and head pose (`mean_face`), the four face parts (`parts`; their
crops of torch batches: `part_crops`), heatmaps, landmark style transfer, face crops (`crop`)
and dlib's models.
"""
