"""Post-training analyses of a run folder: lesions (:mod:`.lesion`) and loss landscapes (:mod:`.landscape`),
as pure functions on a model; :mod:`.run` applies them to a run folder (its checkpoint, its val split)
and writes ``lesion.json`` / ``landscape.json``, TensorBoard scalars and pictures."""
