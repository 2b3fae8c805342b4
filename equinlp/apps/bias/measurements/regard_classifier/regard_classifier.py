"""Regard (Sheng et al. 2019) of each text, by any HF text-classification model, as an ``evaluate`` measurement.

    import evaluate
    regard = evaluate.load("<this folder>", config_name="sasha/regardv3", module_type="measurement")
    regard.compute(data=["XYZ was known for his kindness"])  # {"labels": [...], "scores": [{label: p, ...}]}

``config_name`` is the classifier: a hub id (needs a network the first time) or a local folder. Labels are
lower-cased (regardv3: negative, neutral, positive, other).
"""

import datasets
import evaluate
from transformers import pipeline

_DESCRIPTION = "Regard of each text (negative / neutral / positive / other) from a text-classification model."
_KWARGS_DESCRIPTION = """
Args:
    data (list of str): the texts, with the demographic mention masked (e.g. 'XYZ was known for ...').
Returns:
    labels (list of str): the most likely label of each text.
    scores (list of dict): every label's probability, per text.
"""
_CITATION = """@inproceedings{sheng2019woman, title={The Woman Worked as a Babysitter: On Biases in Language
Generation}, author={Sheng, Emily and Chang, Kai-Wei and Natarajan, Prem and Peng, Nanyun}, booktitle={EMNLP}, year={2019}}"""
DEFAULT_MODEL = "sasha/regardv3"


class RegardClassifier(evaluate.Measurement):
    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"data": datasets.Value("string")}),
        )

    def _download_and_prepare(self, dl_manager):
        model = DEFAULT_MODEL if self.config_name in (None, "", "default") else self.config_name
        try:
            self.classifier = pipeline("text-classification", model=model, top_k=None, truncation=True)
        except (OSError, ValueError) as error:
            raise OSError(
                f"cannot load the regard classifier {model!r}: {error}. Give a local folder holding a "
                "text-classification model, or a hub id on a machine with a network (sasha/regardv3 is not "
                "shipped by any package); VADER and TextBlob work offline."
            ) from error

    def _compute(self, data):
        outputs = self.classifier(list(data))
        scores = [{item["label"].lower(): float(item["score"]) for item in row} for row in outputs]
        return {"labels": [max(row, key=row.get) for row in scores], "scores": scores}
