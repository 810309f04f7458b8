"""Evidence bundles: what leaves the ISP when a lawful-access request has been run.

A bundle is a directory (or a zip of one) holding the records as the contract
has them, each record's inclusion proof against its day's seal (or why there
is none), the same records as CSV tables a person can open, a manifest in
canonical JSON (RFC 8785) that names the request and the SHA-256 of every
file, and `hashes.txt`, the same hashes worded for a hash certificate. The
manifest's own SHA-256 is written in the audit trail, so one hash ties the
delivered bundle to the audited run.

`columns` defines the CSV tables, `bundle` builds, reads and verifies
bundles. Nothing here touches the database; the CLI fetches the request and
its records and hands them in.
"""
