"""``probpose <command>``: the command-line interface, one module per command.

Commands (module: the request it builds -> the library function it calls):
    import    :mod:`~probpose.cli.imports`: ``data.ImportRequest`` -> ``data.run_import``
    train     :mod:`~probpose.cli.train`: a YAML config (``training.load_config``) -> ``training.run_experiment``
    bench     :mod:`~probpose.cli.bench`: ``bench.BenchRequest`` -> ``bench.run_bench``
    evaluate  :mod:`~probpose.cli.evaluate`: ``evaluation.EvaluateRequest`` -> ``evaluation.run_evaluation``
    sample    :mod:`~probpose.cli.sample`: ``models.SampleRequest`` -> ``models.run_sample``
    synth     :mod:`~probpose.cli.synth`: ``synthesis.SynthRequest`` -> ``synthesis.run_synth``
    fit       :mod:`~probpose.cli.fit`: ``fitting.FitRequest`` -> ``fitting.run_fit``
    style     :mod:`~probpose.cli.style`: ``style.StyleTrainRequest`` -> ``style.run_style_train``;
              ``style.StyleApplyRequest`` -> ``style.run_style_apply``

Each command module has ``register(subparsers)`` (its flags, named after its request's fields:
:mod:`~probpose.cli.args`) and a function that builds the request, calls the library and prints
the result. The request checks every setting when it is built (:func:`probpose.options.validate`).
:mod:`~probpose.cli.main` holds the entry point.

Progress: a bar on a terminal, a line every 10 s in a log (-v: every 2 s, with INFO messages;
-q: none).

A mistake in what the user gave (a file, a setting, an argument) prints
``probpose COMMAND: error: FILE: field: reason`` and exits with 1; Ctrl-C exits with 130 (SIGTERM
with 143) and leaves every output as it was. Anything else is a bug and keeps its traceback.
"""

from probpose.cli.main import as_flags, build_parser, main

__all__ = ["main", "build_parser", "as_flags"]
