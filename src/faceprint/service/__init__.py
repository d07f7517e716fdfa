"""faceprint as an HTTP service: a versioned JSON API (``/v1``), its OpenAPI schema and docs, and a web page.

A thin front end like the CLI: routes parse, check the API key's tenant and scopes, call the library
(``faceprint.gallery``, ``faceprint.tenancy``, ``faceprint.apikeys``, ``faceprint.audit``), and present.
Library errors become RFC 9457 problem documents through one table (``faceprint.service.problems``).
Needs ``pip install 'faceprint[server]'``; ``import faceprint`` never loads it.
"""
