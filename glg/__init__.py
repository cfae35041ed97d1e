"""glg: face reenactment by Generative Landmark Guidance, one subpackage per pipeline stage.

Data flow (dvc.yaml's stages, each run by `stages/<stage>.py`):
  videos -> extract -> data/frames -> annotate -> data/annotations -> prepare -> data/prepared
  (the demo's videos come from synthesize -> data/synthetic)
  data/prepared -> train_lgan -> data/lgan (the landmark generator)
  data/prepared + data/lgan -> train_reenact -> data/reenact (the reenactor)
  data/prepared + data/reenact + data/lgan -> evaluate -> data/evaluate, metrics/

| stage or command | subpackage |
| --- | --- |
| synthesize | `glg.synthesize` |
| extract | `glg.extract` |
| annotate | `glg.annotate` |
| prepare | `glg.prepare` |
| train_lgan, train_reenact | `glg.train` (`lgan`, `reenactor`; networks in `glg.models`) |
| evaluate | `glg.evaluate` (metrics in `glg.metrics`) |
| `glg reenact` | `glg.inference` |
| `glg pairs export`, `glg score` | `glg.evaluate` (`exported`, `external`) |
| `glg report` | `glg.report` |

What several stages share: the formats passed between them (`glg.store`), face geometry and
detectors (`glg.face`), params (`glg.config`), the clip engine (`glg.engine`), the loader of
prepared pairs (`glg.data`), errors (`glg.errors`) and the command line (`glg.cli`).
"""
