\echo Use "CREATE EXTENSION voiplog_seal" to load this file. \quit

CREATE FUNCTION voiplog_leaf(VARIADIC "any") RETURNS bytea
AS 'MODULE_PATHNAME', 'voiplog_leaf' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION voiplog_merkle_root(bytea) RETURNS text
AS 'MODULE_PATHNAME', 'voiplog_merkle_root' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
