/*
 * voiplog_seal: day seals computed in C, byte for byte as the SQL of
 * migration 0008 computes them (its functions stay the reference, and are
 * what runs where this extension is not installed).
 *
 * voiplog_leaf(VARIADIC "any") is SHA-256(0x00 || record_send(ROW(...))) of
 * its arguments, where a composite argument is first its own record_send
 * (a bytea in the row) and an array of composites its array_send with the
 * element type's OID zeroed: the form-2 leaf of a record given its columns.
 * The types of the record tables are written directly; any other type goes
 * through its send function, as record_send does.
 *
 * voiplog_merkle_root(bytea) is the root (hex) of the Merkle tree over
 * leaves of 32 bytes end to end: a node SHA-256(0x01 || left || right), a
 * level's odd last node sent up unchanged, no leaves SHA-256 of nothing.
 *
 * voiplog_merkle_paths(leaves bytea, wanted bytea[]) builds that tree once
 * and gives its root, and for each wanted leaf its place among the leaves and
 * its sibling hashes from the leaf up, end to end (the steps
 * voiplog.store.seal.path_steps walks); NULL for a leaf not among them.
 */
#include "postgres.h"

#include <sys/socket.h>

/* The SHA-256 of libcrypto itself: no digest fetched by name for each leaf. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#define LEAF_SIZE SHA256_DIGEST_LENGTH

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(voiplog_leaf);
PG_FUNCTION_INFO_V1(voiplog_merkle_root);
PG_FUNCTION_INFO_V1(voiplog_merkle_paths);

typedef enum
{
	K_TEXT, K_INT2, K_INT4, K_INT8, K_FLOAT8, K_BOOL, K_INET,
	K_COMPOSITE, K_ARRAY, K_SEND
} Kind;

/* How the values of one type are written: once per type and call site. */
typedef struct Writer
{
	Oid			type;
	Kind		kind;
	FmgrInfo	send;			/* K_SEND */
	/* K_COMPOSITE: the fields, as record_send names them */
	TupleDesc	desc;
	int			valid;			/* fields not dropped */
	struct Writer **fields;
	Datum	   *values;
	bool	   *nulls;
	/* K_ARRAY */
	struct Writer *element;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
} Writer;

typedef struct LeafPlan
{
	int			nargs;
	Oid		   *oids;			/* the OID each column says it is */
	Writer	  **writers;
	bool	   *canonical;		/* a composite, or an array of them */
	StringInfoData buf;
} LeafPlan;

static Writer *make_writer(MemoryContext mcxt, Oid type, int32 typmod);

static inline void
sha256(const unsigned char *data, size_t n, unsigned char *digest)
{
	SHA256_CTX	ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, data, n);
	SHA256_Final(digest, &ctx);
}

static Writer *
make_writer(MemoryContext mcxt, Oid type, int32 typmod)
{
	Writer	   *w = MemoryContextAllocZero(mcxt, sizeof(Writer));
	Oid			base = getBaseType(type);

	w->type = type;
	switch (base == type ? type : InvalidOid)
	{
		case TEXTOID:
		case VARCHAROID:
			w->kind = K_TEXT;
			return w;
		case INT2OID:
			w->kind = K_INT2;
			return w;
		case INT4OID:
			w->kind = K_INT4;
			return w;
		case INT8OID:
		case TIMESTAMPTZOID:	/* sent as their microseconds, an int64 */
		case TIMESTAMPOID:
			w->kind = K_INT8;
			return w;
		case FLOAT8OID:
			w->kind = K_FLOAT8;
			return w;
		case BOOLOID:
			w->kind = K_BOOL;
			return w;
		case INETOID:
			w->kind = K_INET;
			return w;
		default:
			break;
	}
	if (base == type && type_is_rowtype(type) && type != RECORDOID)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(type, typmod);
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		w->kind = K_COMPOSITE;
		w->desc = CreateTupleDescCopy(desc);
		MemoryContextSwitchTo(old);
		ReleaseTupleDesc(desc);
		w->fields = MemoryContextAllocZero(mcxt, sizeof(Writer *) * w->desc->natts);
		w->values = MemoryContextAlloc(mcxt, sizeof(Datum) * w->desc->natts);
		w->nulls = MemoryContextAlloc(mcxt, sizeof(bool) * w->desc->natts);
		for (int i = 0; i < w->desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(w->desc, i);

			if (att->attisdropped)
				continue;
			w->fields[i] = make_writer(mcxt, att->atttypid, att->atttypmod);
			w->valid++;
		}
		return w;
	}
	if (base == type && OidIsValid(get_element_type(type)))
	{
		Oid			element = get_element_type(type);

		w->kind = K_ARRAY;
		w->element = make_writer(mcxt, element, -1);
		get_typlenbyvalalign(element, &w->elmlen, &w->elmbyval, &w->elmalign);
		return w;
	}
	{
		Oid			send;
		bool		varlena;

		getTypeBinaryOutputInfo(type, &send, &varlena);
		w->kind = K_SEND;
		fmgr_info_cxt(send, &w->send, mcxt);
	}
	return w;
}

/* Appending without a call per field: room is made once, then written. */
static inline void
room(StringInfo buf, int n)
{
	if (buf->maxlen - buf->len <= n)
		enlargeStringInfo(buf, n);
}

static inline void
put8(StringInfo buf, uint8 v)
{
	room(buf, 1);
	buf->data[buf->len++] = (char) v;
}

static inline void
put32(StringInfo buf, uint32 v)
{
	uint32		n = pg_hton32(v);

	room(buf, 4);
	memcpy(buf->data + buf->len, &n, 4);
	buf->len += 4;
}

static inline void
put64(StringInfo buf, uint64 v)
{
	uint64		n = pg_hton64(v);

	room(buf, 8);
	memcpy(buf->data + buf->len, &n, 8);
	buf->len += 8;
}

static inline void
put_bytes(StringInfo buf, const char *data, int n)
{
	room(buf, n);
	memcpy(buf->data + buf->len, data, n);
	buf->len += n;
}

/* Text is sent in the client's encoding (pq_sendtext): as stored when it is the database's. */
static bool same_encoding;

static void write_value(StringInfo buf, Writer *w, Datum value, bool zero_element);

/* A value with its length before it, as record_send and array_send write one. */
static inline void
write_sized(StringInfo buf, Writer *w, Datum value, bool zero_element)
{
	int			at;

	room(buf, 4);
	at = buf->len;
	buf->len += 4;
	write_value(buf, w, value, zero_element);
	{
		uint32		n = pg_hton32((uint32) (buf->len - at - 4));

		memcpy(buf->data + at, &n, 4);
	}
}

static void
write_composite(StringInfo buf, Writer *w, Datum value)
{
	HeapTupleHeader header = DatumGetHeapTupleHeader(value);
	HeapTupleData tuple;

	if (HeapTupleHeaderGetTypeId(header) != w->type)
		elog(ERROR, "voiplog_leaf: a composite value of type %u where %u was expected",
			 HeapTupleHeaderGetTypeId(header), w->type);
	tuple.t_len = HeapTupleHeaderGetDatumLength(header);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = header;
	heap_deform_tuple(&tuple, w->desc, w->values, w->nulls);
	put32(buf, w->valid);
	for (int i = 0; i < w->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(w->desc, i);

		if (att->attisdropped)
			continue;
		put32(buf, att->atttypid);
		if (w->nulls[i])
			put32(buf, -1);
		else
			write_sized(buf, w->fields[i], w->values[i], false);
	}
}

static void
write_array(StringInfo buf, Writer *w, Datum value, bool zero_element)
{
	ArrayType  *array = DatumGetArrayTypeP(value);
	int			ndim = ARR_NDIM(array);
	int			count = ArrayGetNItems(ndim, ARR_DIMS(array));
	char	   *at = ARR_DATA_PTR(array);
	bits8	   *bitmap = ARR_NULLBITMAP(array);
	int			bit = 1;

	put32(buf, ndim);
	put32(buf, ARR_HASNULL(array) ? 1 : 0);
	put32(buf, zero_element ? 0 : ARR_ELEMTYPE(array));
	for (int i = 0; i < ndim; i++)
	{
		put32(buf, ARR_DIMS(array)[i]);
		put32(buf, ARR_LBOUND(array)[i]);
	}
	for (int i = 0; i < count; i++)
	{
		if (bitmap && !(*bitmap & bit))
			put32(buf, -1);
		else
		{
			Datum		element = fetch_att(at, w->elmbyval, w->elmlen);

			write_sized(buf, w->element, element, false);
			at = att_addlength_pointer(at, w->elmlen, at);
			at = (char *) att_align_nominal(at, w->elmalign);
		}
		if (bitmap)
		{
			bit <<= 1;
			if (bit == 0x100)
			{
				bitmap++;
				bit = 1;
			}
		}
	}
}

static void
write_value(StringInfo buf, Writer *w, Datum value, bool zero_element)
{
	switch (w->kind)
	{
		case K_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				if (same_encoding)
					put_bytes(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				else
					pq_sendtext(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				break;
			}
		case K_INT2:
			{
				uint16		n = pg_hton16((uint16) DatumGetInt16(value));

				put_bytes(buf, (char *) &n, 2);
			}
			break;
		case K_INT4:
			put32(buf, DatumGetInt32(value));
			break;
		case K_INT8:
			put64(buf, DatumGetInt64(value));
			break;
		case K_FLOAT8:
			{
				float8		f = DatumGetFloat8(value);
				uint64		bits;

				memcpy(&bits, &f, 8);
				put64(buf, bits);
			}
			break;
		case K_BOOL:
			put8(buf, DatumGetBool(value) ? 1 : 0);
			break;
		case K_INET:
			{
				inet	   *addr = DatumGetInetPP(value);
				int			nb = ip_addrsize(addr);

				put8(buf, ip_family(addr));
				put8(buf, ip_bits(addr));
				put8(buf, 0);	/* inet, not cidr */
				put8(buf, nb);
				put_bytes(buf, (char *) ip_addr(addr), nb);
				break;
			}
		case K_COMPOSITE:
			write_composite(buf, w, value);
			break;
		case K_ARRAY:
			write_array(buf, w, value, zero_element);
			break;
		case K_SEND:
			{
				bytea	   *out = SendFunctionCall(&w->send, value);

				put_bytes(buf, VARDATA(out), VARSIZE(out) - VARHDRSZ);
				break;
			}
	}
}

static LeafPlan *
leaf_plan(FunctionCallInfo fcinfo)
{
	LeafPlan   *plan = fcinfo->flinfo->fn_extra;
	int			nargs = PG_NARGS();
	MemoryContext mcxt;

	if (plan != NULL && plan->nargs == nargs)
		return plan;
	if (get_fn_expr_variadic(fcinfo->flinfo))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("voiplog_leaf takes the columns as arguments, not as an array")));
	mcxt = fcinfo->flinfo->fn_mcxt;
	plan = MemoryContextAllocZero(mcxt, sizeof(LeafPlan));
	plan->nargs = nargs;
	plan->oids = MemoryContextAlloc(mcxt, sizeof(Oid) * nargs);
	plan->writers = MemoryContextAlloc(mcxt, sizeof(Writer *) * nargs);
	plan->canonical = MemoryContextAlloc(mcxt, sizeof(bool) * nargs);
	for (int i = 0; i < nargs; i++)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, i);
		Writer	   *w;

		if (!OidIsValid(type))
			elog(ERROR, "voiplog_leaf: the type of argument %d is not known", i + 1);
		w = make_writer(mcxt, type, -1);
		plan->writers[i] = w;
		plan->canonical[i] = w->kind == K_COMPOSITE
			|| (w->kind == K_ARRAY && w->element->kind == K_COMPOSITE);
		/* record_send(ROW(...)): a composite column rewritten is a bytea */
		plan->oids[i] = plan->canonical[i] ? BYTEAOID : type;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		initStringInfo(&plan->buf);
		MemoryContextSwitchTo(old);
	}
	fcinfo->flinfo->fn_extra = plan;
	return plan;
}

Datum
voiplog_leaf(PG_FUNCTION_ARGS)
{
	LeafPlan   *plan = leaf_plan(fcinfo);
	StringInfo	buf = &plan->buf;
	bytea	   *leaf = palloc(VARHDRSZ + SHA256_DIGEST_LENGTH);

	same_encoding = pg_get_client_encoding() == GetDatabaseEncoding()
		|| GetDatabaseEncoding() == PG_SQL_ASCII || pg_get_client_encoding() == PG_SQL_ASCII;
	resetStringInfo(buf);
	put8(buf, 0);		/* a leaf */
	put32(buf, plan->nargs);
	for (int i = 0; i < plan->nargs; i++)
	{
		put32(buf, plan->oids[i]);
		if (PG_ARGISNULL(i))
		{
			put32(buf, -1);
			continue;
		}
		/* a canonical column: the bytea its record_send or array_send gives */
		write_sized(buf, plan->writers[i], PG_GETARG_DATUM(i), plan->canonical[i]);
	}
	sha256((unsigned char *) buf->data, buf->len, (unsigned char *) VARDATA(leaf));
	SET_VARSIZE(leaf, VARHDRSZ + SHA256_DIGEST_LENGTH);
	PG_RETURN_BYTEA_P(leaf);
}

/* A wanted leaf, with where it was asked for and where it is in the tree. */
typedef struct Wanted
{
	const unsigned char *leaf;
	int			asked;			/* its place in the wanted array */
	int64		place;			/* among the leaves; -1 while not found */
	int64		at;				/* its node's place in the level being built */
} Wanted;

static int
wanted_order(const void *a, const void *b)
{
	return memcmp(((const Wanted *) a)->leaf, ((const Wanted *) b)->leaf, LEAF_SIZE);
}

/*
 * The root (hex, NUL-ended, in `hex`) of the tree over `count` leaves end to
 * end; on the way up, each wanted leaf found (place >= 0) gets its siblings
 * appended to its path.
 */
static void
tree_root(const unsigned char *leaves, Size count, Wanted *wanted, int nwanted,
		  StringInfoData *paths, char *hex)
{
	unsigned char root[LEAF_SIZE];

	if (count == 0)
		sha256((const unsigned char *) "", 0, root);
	else
	{
		unsigned char *level = palloc(count * LEAF_SIZE);
		unsigned char node[1 + 2 * LEAF_SIZE];

		memcpy(level, leaves, count * LEAF_SIZE);
		node[0] = 1;
		while (count > 1)
		{
			Size		up = 0;

			for (int w = 0; w < nwanted; w++)
			{
				int64		sibling;

				if (wanted[w].place < 0)
					continue;
				sibling = wanted[w].at ^ 1;
				if ((Size) sibling < count)
					appendBinaryStringInfo(&paths[w], (char *) level + sibling * LEAF_SIZE, LEAF_SIZE);
				wanted[w].at /= 2;
			}
			for (Size i = 0; i + 1 < count; i += 2, up++)
			{
				memcpy(node + 1, level + i * LEAF_SIZE, 2 * LEAF_SIZE);
				sha256(node, sizeof(node), level + up * LEAF_SIZE);
			}
			if (count % 2)
			{
				memmove(level + up * LEAF_SIZE, level + (count - 1) * LEAF_SIZE, LEAF_SIZE);
				up++;
			}
			count = up;
			CHECK_FOR_INTERRUPTS();
		}
		memcpy(root, level, LEAF_SIZE);
		pfree(level);
	}
	hex_encode((char *) root, LEAF_SIZE, hex);
	hex[2 * LEAF_SIZE] = '\0';
}

Datum
voiplog_merkle_root(PG_FUNCTION_ARGS)
{
	bytea	   *leaves = PG_GETARG_BYTEA_PP(0);
	Size		size = VARSIZE_ANY_EXHDR(leaves);
	char		hex[2 * LEAF_SIZE + 1];

	if (size % LEAF_SIZE != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("voiplog_merkle_root: %zu bytes are not leaves of 32 bytes", size)));
	tree_root((const unsigned char *) VARDATA_ANY(leaves), size / LEAF_SIZE, NULL, 0, NULL, hex);
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

Datum
voiplog_merkle_paths(PG_FUNCTION_ARGS)
{
	bytea	   *leaves = PG_GETARG_BYTEA_PP(0);
	ArrayType  *asked = PG_GETARG_ARRAYTYPE_P(1);
	Size		size = VARSIZE_ANY_EXHDR(leaves);
	Size		count = size / LEAF_SIZE;
	Datum	   *values;
	bool	   *nulls;
	int			nasked;
	int			nwanted = 0;
	Wanted	   *wanted;
	StringInfoData *paths;
	char		hex[2 * LEAF_SIZE + 1];
	Datum	   *places;
	bool	   *place_nulls;
	Datum	   *siblings;
	bool	   *sibling_nulls;
	TupleDesc	desc;
	Datum		result[3];
	bool		result_nulls[3] = {false, false, false};
	int			dims[1];
	int			lbs[1] = {1};

	if (size % LEAF_SIZE != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("voiplog_merkle_paths: %zu bytes are not leaves of 32 bytes", size)));
	if (count > PG_INT32_MAX)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("voiplog_merkle_paths: %zu leaves are too many", count)));
	if (ARR_NDIM(asked) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("voiplog_merkle_paths: the wanted leaves are a list")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "voiplog_merkle_paths: its result is not a row");
	deconstruct_array(asked, BYTEAOID, -1, false, TYPALIGN_INT, &values, &nulls, &nasked);
	wanted = palloc(sizeof(Wanted) * Max(nasked, 1));
	for (int i = 0; i < nasked; i++)
	{
		bytea	   *leaf;

		if (nulls[i])
			continue;
		leaf = DatumGetByteaPP(values[i]);
		if (VARSIZE_ANY_EXHDR(leaf) != LEAF_SIZE)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("voiplog_merkle_paths: wanted leaf %d has %zu bytes, not 32",
								   i + 1, (Size) VARSIZE_ANY_EXHDR(leaf))));
		wanted[nwanted].leaf = (const unsigned char *) VARDATA_ANY(leaf);
		wanted[nwanted].asked = i;
		wanted[nwanted].place = -1;
		nwanted++;
	}
	/* Each leaf looked up among the wanted ones, sorted: one pass over the day. */
	qsort(wanted, nwanted, sizeof(Wanted), wanted_order);
	if (nwanted > 0)
	{
		const unsigned char *data = (const unsigned char *) VARDATA_ANY(leaves);

		for (Size i = 0; i < count; i++)
		{
			Wanted		key = {.leaf = data + i * LEAF_SIZE};
			Wanted	   *hit = bsearch(&key, wanted, nwanted, sizeof(Wanted), wanted_order);

			if (hit != NULL)
			{
				/* equal wanted leaves: every one of them */
				while (hit > wanted && wanted_order(hit - 1, &key) == 0)
					hit--;
				for (; hit < wanted + nwanted && wanted_order(hit, &key) == 0; hit++)
					if (hit->place < 0)
						hit->place = hit->at = (int64) i;
			}
			if ((i & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}
	paths = palloc(sizeof(StringInfoData) * Max(nwanted, 1));
	for (int w = 0; w < nwanted; w++)
		initStringInfo(&paths[w]);
	tree_root((const unsigned char *) VARDATA_ANY(leaves), count, wanted, nwanted, paths, hex);
	/* In the order asked, NULL where a leaf is not among them. */
	places = palloc0(sizeof(Datum) * Max(nasked, 1));
	siblings = palloc0(sizeof(Datum) * Max(nasked, 1));
	place_nulls = palloc(sizeof(bool) * Max(nasked, 1));
	sibling_nulls = palloc(sizeof(bool) * Max(nasked, 1));
	for (int i = 0; i < nasked; i++)
		place_nulls[i] = sibling_nulls[i] = true;
	for (int w = 0; w < nwanted; w++)
	{
		bytea	   *path;

		if (wanted[w].place < 0)
			continue;
		path = palloc(VARHDRSZ + paths[w].len);
		SET_VARSIZE(path, VARHDRSZ + paths[w].len);
		memcpy(VARDATA(path), paths[w].data, paths[w].len);
		places[wanted[w].asked] = Int32GetDatum((int32) wanted[w].place);
		place_nulls[wanted[w].asked] = false;
		siblings[wanted[w].asked] = PointerGetDatum(path);
		sibling_nulls[wanted[w].asked] = false;
	}
	dims[0] = nasked;
	result[0] = PointerGetDatum(cstring_to_text(hex));
	if (nasked == 0)
	{
		result[1] = PointerGetDatum(construct_empty_array(INT4OID));
		result[2] = PointerGetDatum(construct_empty_array(BYTEAOID));
	}
	else
	{
		result[1] = PointerGetDatum(construct_md_array(places, place_nulls, 1, dims, lbs,
													   INT4OID, 4, true, TYPALIGN_INT));
		result[2] = PointerGetDatum(construct_md_array(siblings, sibling_nulls, 1, dims, lbs,
													   BYTEAOID, -1, false, TYPALIGN_INT));
	}
	desc = BlessTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result, result_nulls)));
}
