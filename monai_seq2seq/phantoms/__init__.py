"""Physics-based phantom cohorts: the embedded data of every bundle, with known ground truth.

- Brain (BraTS-like: T1, T1Gd, T2, FLAIR) on the MNI ICBM152 2009a template shipped in ``nilearn``
  (see ``NOTICE.md``), with a glioma-like tumour whose enhancing part is the planted ``unique-T1Gd`` region.
- Breast (T1, FatSatT1, T2, DCE, FatSatDCE, WashIn, WashOut, DWI) with DCE kinetics and IVIM diffusion.
- The paper's toy alphabet set.

Brain and breast subjects also carry mimics of their planted regions (as bright, but predictable from the other
sequences), and :func:`~.realism.apply_realism` adds clinical acquisition effects (bias, noise, thick slices,
misalignment, field of view) with their truth recorded; see ``docs/PHANTOMS.md``.

Every subject is generated lazily and deterministically from ``(seed, index)``; the cohorts are
``torch.utils.data.Dataset`` list-likes of CONTRACTS.md sample dicts.
"""

from monai_seq2seq.phantoms.anatomy import load_mni_template
from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
from monai_seq2seq.phantoms.breast import BreastPhantomConfig, generate_breast_subject
from monai_seq2seq.phantoms.cohort import BrainPhantomCohort, BreastPhantomCohort, PhantomCohort, subject_to_sample
from monai_seq2seq.phantoms.figures import save_subject_figure, subject_figure
from monai_seq2seq.phantoms.realism import RealismConfig, apply_realism
from monai_seq2seq.phantoms.signal import wash_in_out
from monai_seq2seq.phantoms.subject import PhantomSubject
from monai_seq2seq.phantoms.toy import AlphabetToyDataset, generate_toy_sample
from monai_seq2seq.phantoms.writer import write_cohort, write_datalist, write_subject

__all__ = [
    "AlphabetToyDataset",
    "BrainPhantomCohort",
    "BrainPhantomConfig",
    "BreastPhantomCohort",
    "BreastPhantomConfig",
    "PhantomCohort",
    "PhantomSubject",
    "RealismConfig",
    "apply_realism",
    "generate_brain_subject",
    "generate_breast_subject",
    "generate_toy_sample",
    "load_mni_template",
    "save_subject_figure",
    "subject_figure",
    "subject_to_sample",
    "wash_in_out",
    "write_cohort",
    "write_datalist",
    "write_subject",
]
