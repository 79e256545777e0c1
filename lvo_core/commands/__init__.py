"""What each command of ``python -m lvo_core`` does, as library calls over parsed settings.

Each ``cmd_*`` takes the settings as attributes (an ``argparse.Namespace`` from :mod:`lvo_core.cli`, or a
``types.SimpleNamespace`` from Python), parses them into the core's objects, calls the core, has :mod:`lvo_core.runs`
draw and write what it made, prints what it did and returns the exit status. Bad input raises
:class:`~lvo_core.errors.LVOError`; :func:`~lvo_core.commands.boundary.run` turns it into one line and status 2.

* :mod:`~lvo_core.commands.boundary` — the error boundary, the settings checks and ``--from-json`` reruns, progress;
* :mod:`~lvo_core.commands.setup` — model, SAE and hookpoint from the flags, and the inputs every command reads;
* :mod:`~lvo_core.commands.lvo_run` — ``visualize``/``atlas`` flags as one run spec for the run builder;
* the commands by topic: :mod:`~lvo_core.commands.visualize` (visualize, atlas, steer),
  :mod:`~lvo_core.commands.data` (analyze, bank, examples, label), :mod:`~lvo_core.commands.browse` (search, page),
  :mod:`~lvo_core.commands.demo` (demo, ablate on the toy world), :mod:`~lvo_core.commands.files` (info, convert).
"""
