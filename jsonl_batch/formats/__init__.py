"""The file formats jsonl-batch reads and writes, each defined once, at the bottom of the package.

* :mod:`.wire`: request, output and error lines and the request bodies (the services' format)
* :mod:`.output_lines`: what one output or error line says, for every shape the services write
* :mod:`.batch`: the batch object's statuses and errors (the services' format)
* :mod:`.manifest`: ``<stem>.manifest.json``, written by ``split``
* :mod:`.jobfile`: ``<stem>.job.json``, written by ``submit`` and ``wait``
* :mod:`.naming`: the stem rule and the name of every file the tool writes

Every other module reads these; these import only :mod:`jsonl_batch.jsonl` and
:mod:`jsonl_batch.errors`.
"""
