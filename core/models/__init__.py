"""One file per model family; importing this package registers them all."""

from core.models import fvsbn  # noqa: F401
from core.models import realnvp  # noqa: F401
from core.models import nice  # noqa: F401
from core.models import nsf  # noqa: F401
from core.models import rnade  # noqa: F401
from core.models import gan  # noqa: F401
from core.models import dae  # noqa: F401
from core.models import inversion  # noqa: F401
from core.models import neural_cdf  # noqa: F401
from core.models import histogram  # noqa: F401
from core.models import kde  # noqa: F401
from core.models import knn  # noqa: F401
from core.models import gmm  # noqa: F401
from core.models import nade  # noqa: F401
from core.models import cnade  # noqa: F401
from core.models import made  # noqa: F401
from core.models import made_mixture  # noqa: F401
from core.models import pixelrnn  # noqa: F401
from core.models import pixelcnn  # noqa: F401
from core.models import wavenet  # noqa: F401
from core.models import vae  # noqa: F401
from core.models import cvae  # noqa: F401
from core.models import autoencoder  # noqa: F401
from core.models import dcgan  # noqa: F401
from core.models import cgan  # noqa: F401
