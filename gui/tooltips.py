"""What every metric, plot and tile of the window means: one line of what it is, then what to
watch. The texts are keyed by the widgets' object names; :func:`explain` gives each named widget
of a window its text (a widget that set its own tooltip keeps it). The playground's tiles, made
as models are chosen, take theirs from :func:`tile_tip`."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

#: object name -> tooltip
TIPS: dict[str, str] = {
    # Training tab
    "lossPlot": "Training loss (nats per example, per step) and held-out NLL (at each evaluation). Watch the "
                "held-out curve: when it rises while the loss still falls, the model overfits. A GAN shows its "
                "discriminator and generator losses instead of a likelihood.",
    "samplesView": "Samples drawn from the model being trained, refreshed as it learns. Watch them turn from "
                   "noise into digits (or shapes); identical tiles mean a collapsed model.",
    "sampleCurves": "Sequences sampled from the model being trained, stacked. Watch for the data's rhythm and "
                    "range; flat lines or noise mean it has not learnt the sequences yet.",
    "samplesCaption": "What the samples panel shows, and the training step they were drawn at.",
    "stepLabel": "Training steps done, and epochs (passes through the training set).",
    "speedLabel": "Training speed in steps per second (it falls while the window draws a lot).",
    "deviceLabel": "Where the model trains: the CPU or a CUDA GPU (with the reason when a GPU asked for is not used).",
    "lrLabel": "The learning rate the schedule starts from. Too high: the loss jumps or turns NaN; too low: "
               "it barely moves.",
    # Canvas tab
    "canvasProbLabel": "The model's probability that the pixel being drawn is ink, p(x = 1 | the pixels before "
                       "it): near 0 or 1 the model is sure.",
    "canvasTotal": "−log p(x) of the drawing under the selected model (nats): the sum of the heatmap. Lower is "
                   "more likely; see typicality for whether that looks like a digit.",
    # Playground
    "tiles": "One tile per model, the data first: each model's density as a heatmap (bright = likely) with its "
             "samples as dots in its colour over the data in grey. Watch for mass between the data's clusters.",
    "nllPlot": "Held-out NLL (nats) of each model against training steps; the dashed line is the true entropy. "
               "Watch the curves fall towards it; one that rises again overfits.",
    # Sequences tab
    "sequenceView": "Left: the sampled continuations (one colour each) after the prefix (white) and the real "
                    "continuation (dashed). Right: the model's distribution of the next step (bright = likely). "
                    "Watch whether the candidates keep the real sequence's shape.",
    # Latent tab
    "latentImage": "The image the decoder makes of the latent point set by the sliders or the map.",
    "latentDigits": "The same latent point decoded as each digit 0-9 (conditional models): the latent code "
                    "carries the style, the label the digit. Watch the style stay the same along the row.",
    "latentMap": "The latent space over two of its dimensions: a mosaic of decoded images, the validation "
                 "digits' codes (dots coloured by digit), the current point (red cross), the encoded drawing "
                 "(star) and the interpolation's path. Watch the gaps between the digits' clusters: they decode "
                 "to blurry in-betweens.",
    "latentInterpolation": "Images decoded along the path from A to B in latent space. Watch for sharp images "
                           "all the way: blur in the middle means the path leaves the region the decoder knows.",
    "decodeLabel": "Time to decode one latent point (ms): the sliders stay live while it is small.",
    "encodeResult": "What encoding the drawing found: its latent point and how well the reconstruction matches.",
    "mapCaption": "What the map shows: which two latent dimensions, and the other dimensions' values.",
}

#: the labels that show a measurement (a test checks each has its tooltip)
METRIC_LABELS = ("samplesCaption", "stepLabel", "speedLabel", "deviceLabel", "lrLabel", "canvasProbLabel",
                 "canvasTotal", "canvasPercentile", "decodeLabel", "encodeResult", "mapCaption")


def explain(root: QWidget) -> None:
    """Give every named widget under ``root`` (and ``root``) its tooltip, unless it has one."""
    for w in [root, *root.findChildren(QWidget)]:
        tip = TIPS.get(w.objectName())
        if tip and not w.toolTip():
            w.setToolTip(tip)


def tile_tip(title: str, first: bool) -> str:
    """A playground tile's tooltip: the data tile's, or a model's."""
    if first:
        return (f"{title}: the training points (grey dots), and the true density where it is known. With Paint "
                "on, click or drag here to add points.")
    return (f"{title}: the model's density (bright = likely), its samples (coloured dots) over the data (grey); "
            "a flow also shows its warped grid. Watch for mass between the data's clusters and samples off them.")
