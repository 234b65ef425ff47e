"""The dataset builder: real motion capture -> captioned clips in the HumanML3D layout.

`prepare_dataset` (the `irmogen data prepare` command) ties the rooms together: `sources` (files
and labels of each mocap source), `describe` (facts measured from a motion), `captions` (sentences
from labels and facts, left/right mirroring), `human_captions` (HumanML3D's human-written captions
of CMU time windows), `alignment` (measured checks that those windows fit our copies), `splits`
(performer-disjoint train/val/test) and `layout` (the HumanML3D files, Mean/Std, README);
`paraphrases` reads the hand-written paraphrase set of the test captions. Never imports torch or bpy.
"""
from .prepare import prepare_dataset, to_reference_body

__all__ = ["prepare_dataset", "to_reference_body"]
