"""The two trainers, one plain function each: `glg.train.lgan.train_lgan` (the landmark
conditional GAN, thesis 3.3.2) and `glg.train.reenactor.train_reenact` (the reenactment GAN,
Sec III, thesis 3.5); what they share (device, precision, processes, dvclive) is in
`glg.train.runtime`, checkpoints in `glg.store.checkpoint`.
"""
