\echo Use "ALTER EXTENSION voiplog_seal UPDATE TO '1.1'" to load this file. \quit

CREATE FUNCTION voiplog_merkle_paths(leaves bytea, wanted bytea[], OUT root text,
    OUT places integer[], OUT siblings bytea[])
AS 'MODULE_PATHNAME', 'voiplog_merkle_paths' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
