"""Statistics of the study, one submodule per topic; import from the submodule you need. Numbers only: no module
here runs a network (tests/test_layers.py checks that none imports torch, torchvision or captum).

- :mod:`medadv.stats.auc`: trapezoidal AUC, DeLong placements, covariance, confidence interval and paired test.
- :mod:`medadv.stats.mrmc`: Obuchowski-Rockette multi-reader multi-case ROC analysis with Hillis's degrees of
  freedom (random readers and cases, fixed readers, fixed cases; jackknife or DeLong covariances).
- :mod:`medadv.stats.reader`: the reader study of paper 001: response validation, accuracy with exact binomial
  intervals, the sub-group p-values between sessions, exact McNemar, Fleiss' kappa, reading times, ratings for MRMC.
- :mod:`medadv.stats.paired`: paired comparisons of two models on the same images (Wilcoxon, rank-biserial, Holm).
- :mod:`medadv.stats.fidelity`: how faithful the GAN's fakes are and where the GAN changed them.
- :mod:`medadv.stats.binomial`: the exact (Clopper-Pearson) binomial interval that every rate of the kit carries.
"""

from __future__ import annotations
