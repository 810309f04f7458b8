\echo Use "CREATE EXTENSION voiplog_seal" to load this file. \quit

CREATE FUNCTION voiplog_leaf(VARIADIC "any") RETURNS bytea
AS 'MODULE_PATHNAME', 'voiplog_leaf' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION voiplog_merkle_root(bytea) RETURNS text
AS 'MODULE_PATHNAME', 'voiplog_merkle_root' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION voiplog_merkle_paths(leaves bytea, wanted bytea[], OUT root text,
    OUT places integer[], OUT siblings bytea[])
AS 'MODULE_PATHNAME', 'voiplog_merkle_paths' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
