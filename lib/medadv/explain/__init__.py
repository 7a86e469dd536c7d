"""Attribution maps of the kit's classifiers, their alignment with annotated lesions, and attacks on the maps.

- :mod:`medadv.explain.attribute`: :func:`attribute` (Grad-CAM, Guided Grad-CAM, saliency, integrated gradients,
  DeepLIFT, occlusion through captum, batched) and :func:`gradcam_layer` (the Grad-CAM layer each model declares).
- :mod:`medadv.explain.alignment`: localisation metrics on (saliency, mask) batches, one score per image.
- :mod:`medadv.explain.manipulation`: Grad-CAM manipulation after Ghorbani et al. 2019 (paper 004's attack).
- :mod:`medadv.explain.study`: the alignment study of paper 000 and the manipulation study of paper 004 (notebook 04).
- :mod:`medadv.explain.gan_evidence`: the classifier's evidence on the GAN's fakes and a discriminator's scores, for
  the fidelity tables of notebook 02.
- :mod:`medadv.explain.plots`: their figures.
"""

from __future__ import annotations

from medadv.explain.attribute import METHODS, attribute, gradcam_layer

__all__ = ["METHODS", "attribute", "gradcam_layer"]
