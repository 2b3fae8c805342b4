"""Offline, seeded, tiny: every test builds what it needs from configs in milliseconds."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import equinlp as eq  # noqa: E402
from equinlp.testing import tiny_causal_lm, word_tokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Small networks: one thread is fastest, and oversubscribed threads crawl on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    """e3nn-style: generic equivariance checks run in both precisions (tolerances: equinlp.testing.TOLERANCE)."""
    return request.param


@pytest.fixture
def tok():
    """The test words' tokenizer, a fresh one per test (a test may set its padding side without touching another's)."""
    return word_tokenizer()


@pytest.fixture(scope="session")
def swap():
    """Z2: man<->woman and he<->she together."""
    return eq.vocab_permutation(word_tokenizer(), [("man", "woman"), ("he", "she")], name="gender")


@pytest.fixture(scope="session")
def cycle3():
    """Z3: Black -> White -> Asian (g != g⁻¹, so a wrong inverse shows)."""
    return eq.vocab_permutation(word_tokenizer(), [("Black", "White", "Asian")], name="race")


@pytest.fixture(scope="session")
def s3():
    """S3, the smallest non-abelian group: Black<->White and Black -> White -> Asian generate every permutation."""
    return eq.vocab_permutation(word_tokenizer(), [("Black", "White")], [("Black", "White", "Asian")], name="S3")


@pytest.fixture
def model(tok, swap):
    """equitune over man<->woman, he<->she on a tiny random GPT-2."""
    return eq.equitune(tiny_causal_lm(len(tok)), swap)


@pytest.fixture(scope="session")
def embedded_cache(tmp_path_factory):
    """A fresh EQUINLP_CACHE for the run: the embedded model is converted from its GGUF once, as on a new machine."""
    folder = tmp_path_factory.mktemp("equinlp-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EQUINLP_CACHE", str(folder))
        yield folder
