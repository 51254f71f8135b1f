"""Weight clustering of a found network (DKM: differentiable k-means, Cho et al. 2022).

Modules: ``dkm`` (the soft clustering as a parametrisation of every conv and linear weight,
:func:`~nas.compression.dkm.attach`; :func:`~nas.compression.dkm.snap` to the centroids),
``storage`` (``clustered.pt``: centroids and bit-packed indices, :func:`load_clustered`) and
``run`` (:func:`run_compress`, what ``nas compress`` runs).
"""

from nas.compression.dkm import SoftClusters, attach, hard_kmeans, snap
from nas.compression.run import run_compress
from nas.compression.storage import CLUSTERED_FILE, index_bits, load_clustered, save_clustered

__all__ = [
    "CLUSTERED_FILE",
    "SoftClusters",
    "attach",
    "hard_kmeans",
    "index_bits",
    "load_clustered",
    "run_compress",
    "save_clustered",
    "snap",
]
