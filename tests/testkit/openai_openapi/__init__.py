"""OpenAI's published API document (a vendored subset) and a validator for bodies against it.

`openapi.subset.json` comes from https://github.com/openai/openai-openapi (MIT, see LICENSE here;
the commit is in its `info.x-vendored-from`), cut down by extract.py to the POST operations of
chat, completions, embeddings and responses and every component schema they reach."""
