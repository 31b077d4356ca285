/*
 * The compiled twin of remote_write.py's upb counting: one pass over a decompressed
 * remote_write body (Remote Write 1.0 or 2.0), no allocation, the same counts and the same
 * refusals as parsing protos/mimir_edge/proto/counting.proto's views with upb and rejecting
 * known fields that arrive with the wrong wire type.
 *
 * What "the same refusals" means, rule by rule (each mirrors upb's decoder, upb/wire/decode.c):
 *  - a tag is a varint of at most 5 bytes whose value fits 32 bits; field number 0 is refused,
 *    except inside an unknown group (upb skips a group's contents with its wire reader);
 *  - other varints take at most 10 bytes (bits past 64 are dropped, as upb drops them);
 *  - wire types 6 and 7 are refused; an end-group tag must close the innermost open group;
 *  - a length is a varint of at most 5 bytes, below 2^31 - 1, inside the enclosing message;
 *  - nothing may be read past the end of the enclosing message (truncation is refused);
 *  - a repeated scalar accepts its own wire type or the packed form; a packed double field's
 *    length is a multiple of 8 and a packed varint field holds only whole varints;
 *  - messages and groups nest at most DEPTH_LIMIT deep, counted as upb counts them;
 *  - a known field with another wire type is skipped (as upb keeps it as an unknown field),
 *    except where remote_write.py rejects it: the request level of both protocols and the 2.0
 *    series.
 * Nothing here validates UTF-8: the views declare every string as `bytes`.
 *
 * 2.0 metadata is counted as Mimir charges it, one item per metric family of the request: when the
 * pass saw any Metadata message, a second pass reads the symbols table and each series carrying
 * metadata (rw2_metadata_families, below; remote_write.py's `_rw2_metadata_families` is its twin).
 *
 * The walker fills a `walk_result`, one field per kind of item, so that later additions (the
 * first series' HA labels, exemplars charged apart) are fields and arguments, not a new pass.
 *
 * The first series' labels (where Mimir's HA tracker looks) come with the counts, read as
 * remote_write.py's upb twin reads them (`first_series_labels`): the pass notes where the first
 * series is and how many symbols there are; afterwards only that series is read again, as upb
 * parses it on its own with the SeriesLabels / SeriesLabelRefs views, and for 2.0 the symbols
 * table is scanned once up to the highest reference. A label that does not parse, an odd number of
 * references or one outside the symbols table gives no labels, never a refusal: labels are
 * Mimir's to validate.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* upb's default: Python's protobuf passes no depth of its own. */
#define DEPTH_LIMIT 100
#define NO_GROUP 0xFFFFFFFFu

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct {
    uint64_t series;
    uint64_t float_samples;
    uint64_t histogram_samples;
    uint64_t exemplars;
    uint64_t metadata;           /* 1.0: entries; 2.0: metric families (rw2_metadata_families) */
    uint64_t metadata_messages;  /* 2.0: Metadata messages in the series (pass 1) */
    uint64_t symbols;            /* 2.0: entries of the symbols table */
    const uint8_t *first_series; /* the first series' length varint; NULL when there is none */
} walk_result;

/* One label as slices of the body; a field absent from the Label message is empty (proto3). */
typedef struct {
    const uint8_t *name, *value;
    Py_ssize_t name_len, value_len;
} label_slices;

typedef struct {
    int depth;          /* nesting still allowed, as upb's decoder->depth */
    const char *error;  /* why the body is refused; NULL while it is fine */
    walk_result *out;
    label_slices *label; /* filled by walk_label */
} walker;

typedef const uint8_t *(*message_fn)(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group);

static const uint8_t *fail(walker *w, const char *why) {
    if (w->error == NULL) w->error = why;
    return NULL;
}

static inline const uint8_t *read_varint(walker *w, const uint8_t *p, const uint8_t *end, uint64_t *out) {
    if (p < end && !(*p & 0x80)) {
        *out = *p;
        return p + 1;
    }
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (p + i >= end) return fail(w, "truncated varint");
        uint64_t byte = p[i];
        value |= (byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            *out = value;
            return p + i + 1;
        }
    }
    return fail(w, "varint longer than 10 bytes");
}

static inline const uint8_t *read_tag(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *tag) {
    if (p < end && !(*p & 0x80)) {
        *tag = *p;
        return p + 1;
    }
    uint64_t value;
    const uint8_t *next = read_varint(w, p, end, &value);
    if (next == NULL) return NULL;
    if (next - p > 5 || value > UINT32_MAX) return fail(w, "tag longer than 5 bytes or over 32 bits");
    *tag = (uint32_t)value;
    return next;
}

static inline const uint8_t *read_length(walker *w, const uint8_t *p, const uint8_t *end, const uint8_t **sub_end) {
    uint64_t size;
    const uint8_t *start = p;
    p = read_varint(w, p, end, &size);
    if (p == NULL) return NULL;
    if (p - start > 5) return fail(w, "length longer than 5 bytes");
    if (size >= INT32_MAX || size > (uint64_t)(end - p)) return fail(w, "length past the end of its message");
    *sub_end = p + size;
    return p;
}

static const uint8_t *skip_value(walker *w, const uint8_t *p, const uint8_t *end, uint32_t tag);

/* An unknown group, skipped as upb skips one (upb_WireReader_SkipGroup): up to its own end-group
 * tag; another end-group tag, or the end of the enclosing message first, is malformed. Unlike a
 * message's fields, a group's fields may be numbered 0. */
static const uint8_t *skip_group(walker *w, const uint8_t *p, const uint8_t *end, uint32_t number) {
    if (p >= end) return fail(w, "group without an end");
    if (--w->depth < 0) return fail(w, "nested too deeply");
    uint32_t end_tag = (number << 3) | WT_EGROUP;
    while (p < end) {
        uint32_t tag;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        if (tag == end_tag) {
            w->depth++;
            return p;
        }
        p = skip_value(w, p, end, tag);
        if (p == NULL) return NULL;
    }
    return fail(w, "group without its end tag");
}

static const uint8_t *skip_value(walker *w, const uint8_t *p, const uint8_t *end, uint32_t tag) {
    uint64_t ignored;
    const uint8_t *sub_end;
    switch (tag & 7) {
        case WT_VARINT:
            return read_varint(w, p, end, &ignored);
        case WT_I64:
            return end - p < 8 ? fail(w, "truncated fixed64") : p + 8;
        case WT_I32:
            return end - p < 4 ? fail(w, "truncated fixed32") : p + 4;
        case WT_LEN:
            return read_length(w, p, end, &sub_end) == NULL ? NULL : sub_end;
        case WT_SGROUP:
            return skip_group(w, p, end, tag >> 3);
        case WT_EGROUP:
            return fail(w, "unexpected end-group tag");
        default:
            return fail(w, "invalid wire type");
    }
}

/* An unknown field of a message (any field of a group goes through skip_value alone). */
static inline const uint8_t *skip_field(walker *w, const uint8_t *p, const uint8_t *end, uint32_t tag) {
    if ((tag >> 3) == 0) return fail(w, "field number 0");
    return skip_value(w, p, end, tag);
}

/* Any message whose fields are all unknown or singular scalars/bytes: upb only checks framing. */
static const uint8_t *walk_opaque(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    while (p < end) {
        uint32_t tag;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        if ((tag & 7) == WT_EGROUP) {
            *end_group = tag >> 3;
            return p;
        }
        p = skip_field(w, p, end, tag);
        if (p == NULL) return NULL;
    }
    return p;
}

/* A length-delimited sub-message: one level deeper, must not end with an end-group tag. */
static inline const uint8_t *walk_sub(walker *w, const uint8_t *p, const uint8_t *end, message_fn fn) {
    const uint8_t *sub_end;
    p = read_length(w, p, end, &sub_end);
    if (p == NULL) return NULL;
    if (--w->depth < 0) return fail(w, "nested too deeply");
    uint32_t end_group = NO_GROUP;
    p = fn(w, p, sub_end, &end_group);
    w->depth++;
    if (p == NULL) return NULL;
    if (end_group != NO_GROUP) return fail(w, "end-group tag outside a group");
    return p;
}

/* Packed repeated varints: whole varints up to the end of the field. Returns how many. */
static inline const uint8_t *walk_packed_varints(walker *w, const uint8_t *p, const uint8_t *end, uint64_t *count) {
    const uint8_t *field_end;
    p = read_length(w, p, end, &field_end);
    if (p == NULL) return NULL;
    uint64_t n = 0, ignored;
    while (p < field_end) {
        p = read_varint(w, p, field_end, &ignored);
        if (p == NULL) return NULL;
        n++;
    }
    *count = n;
    return p;
}

static inline const uint8_t *walk_packed_fixed64(walker *w, const uint8_t *p, const uint8_t *end) {
    const uint8_t *field_end;
    p = read_length(w, p, end, &field_end);
    if (p == NULL) return NULL;
    if ((field_end - p) % 8 != 0) return fail(w, "packed doubles not a multiple of 8 bytes");
    return field_end;
}

/* A repeated varint field (labels refs, deltas): unpacked or packed. */
static inline const uint8_t *walk_repeated_varint(walker *w, const uint8_t *p, const uint8_t *end, uint32_t tag,
                                                  uint64_t *count) {
    uint64_t ignored;
    if ((tag & 7) == WT_VARINT) {
        *count = 1;
        return read_varint(w, p, end, &ignored);
    }
    if ((tag & 7) == WT_LEN) return walk_packed_varints(w, p, end, count);
    *count = 0;
    return skip_field(w, p, end, tag);
}

/* prometheus.Histogram and io.prometheus.write.v2.Histogram: the same fields. */
static const uint8_t *walk_histogram(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    while (p < end) {
        uint32_t tag;
        uint64_t n = 0;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        switch (tag) {
            case (8 << 3) | WT_LEN:  /* negative_spans */
            case (11 << 3) | WT_LEN: /* positive_spans */
                p = walk_sub(w, p, end, walk_opaque);
                break;
            case (9 << 3) | WT_VARINT: /* negative_deltas */
            case (9 << 3) | WT_LEN:
            case (12 << 3) | WT_VARINT: /* positive_deltas */
            case (12 << 3) | WT_LEN:
                p = walk_repeated_varint(w, p, end, tag, &n);
                break;
            case (10 << 3) | WT_LEN: /* negative_counts */
            case (13 << 3) | WT_LEN: /* positive_counts */
            case (16 << 3) | WT_LEN: /* custom_values */
                p = walk_packed_fixed64(w, p, end);
                break;
            default:
                if ((tag & 7) == WT_EGROUP) {
                    *end_group = tag >> 3;
                    return p;
                }
                p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

/* --- Remote Write 1.0 -------------------------------------------------------------------------- */

/* Series labels (field 1) are skipped whole, as the upb view leaves them unparsed; wrong wire
 * types in a series are not refused (remote_write.py does not list a 1.0 series' unknowns). */
static const uint8_t *walk_rw1_series(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    walk_result *out = w->out;
    while (p < end) {
        uint32_t tag;
        const uint8_t *sub_end;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        switch (tag) {
            case (1 << 3) | WT_LEN: /* labels */
                p = read_length(w, p, end, &sub_end) == NULL ? NULL : sub_end;
                break;
            case (2 << 3) | WT_LEN:
                out->float_samples++;
                p = walk_sub(w, p, end, walk_opaque);
                break;
            case (3 << 3) | WT_LEN:
                out->exemplars++;
                p = walk_sub(w, p, end, walk_opaque);
                break;
            case (4 << 3) | WT_LEN:
                out->histogram_samples++;
                p = walk_sub(w, p, end, walk_histogram);
                break;
            default:
                if ((tag & 7) == WT_EGROUP) {
                    *end_group = tag >> 3;
                    return p;
                }
                p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

static const uint8_t *walk_rw1_request(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    while (p < end) {
        uint32_t tag;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        uint32_t number = tag >> 3;
        if (tag == ((1 << 3) | WT_LEN)) {
            if (w->out->series++ == 0) w->out->first_series = p;
            p = walk_sub(w, p, end, walk_rw1_series);
        } else if (tag == ((3 << 3) | WT_LEN)) {
            w->out->metadata++;
            p = walk_sub(w, p, end, walk_opaque);
        } else if ((tag & 7) == WT_EGROUP) {
            *end_group = number;
            return p;
        } else if (number == 1 || number == 3) {
            return fail(w, "known field with the wrong wire type");
        } else {
            p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

/* --- Remote Write 2.0 -------------------------------------------------------------------------- */

static const uint8_t *walk_rw2_exemplar(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    while (p < end) {
        uint32_t tag;
        uint64_t n = 0;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        if (tag == ((1 << 3) | WT_VARINT) || tag == ((1 << 3) | WT_LEN)) {
            p = walk_repeated_varint(w, p, end, tag, &n);
        } else if ((tag & 7) == WT_EGROUP) {
            *end_group = tag >> 3;
            return p;
        } else {
            p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

/* Metadata of one series. type = 1, help_ref = 3 and unit_ref = 4 are singular varints; Mimir
 * (MetricMetadataUnmarshalRW2) refuses them with any other wire type, packed included, and so
 * does remote_write.py. What is counted is worked out afterwards (rw2_metadata_families). */
static const uint8_t *walk_rw2_metadata(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    w->out->metadata_messages++;
    while (p < end) {
        uint32_t tag;
        uint64_t ignored;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        uint32_t number = tag >> 3;
        if ((tag & 7) == WT_EGROUP) {
            *end_group = number;
            return p;
        }
        if (number == 1 || number == 3 || number == 4) {
            if ((tag & 7) != WT_VARINT) return fail(w, "known field with the wrong wire type");
            p = read_varint(w, p, end, &ignored);
        } else {
            p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

static const uint8_t *walk_rw2_series(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    walk_result *out = w->out;
    while (p < end) {
        uint32_t tag;
        uint64_t n = 0, ignored;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        switch (tag) {
            case (1 << 3) | WT_VARINT: /* labels_refs */
            case (1 << 3) | WT_LEN:
                p = walk_repeated_varint(w, p, end, tag, &n);
                break;
            case (2 << 3) | WT_LEN:
                out->float_samples++;
                p = walk_sub(w, p, end, walk_opaque);
                break;
            case (3 << 3) | WT_LEN:
                out->histogram_samples++;
                p = walk_sub(w, p, end, walk_histogram);
                break;
            case (4 << 3) | WT_LEN:
                out->exemplars++;
                p = walk_sub(w, p, end, walk_rw2_exemplar);
                break;
            case (5 << 3) | WT_LEN:
                p = walk_sub(w, p, end, walk_rw2_metadata);
                break;
            case (6 << 3) | WT_VARINT: /* created_timestamp */
                p = read_varint(w, p, end, &ignored);
                break;
            default:
                if ((tag & 7) == WT_EGROUP) {
                    *end_group = tag >> 3;
                    return p;
                }
                if ((tag >> 3) >= 1 && (tag >> 3) <= 6) return fail(w, "known field with the wrong wire type");
                p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

static const uint8_t *walk_rw2_request(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    while (p < end) {
        uint32_t tag;
        const uint8_t *sub_end;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        uint32_t number = tag >> 3;
        if (tag == ((4 << 3) | WT_LEN)) { /* symbols: bytes, not validated */
            w->out->symbols++;
            p = read_length(w, p, end, &sub_end) == NULL ? NULL : sub_end;
        } else if (tag == ((5 << 3) | WT_LEN)) {
            if (w->out->series++ == 0) w->out->first_series = p;
            p = walk_sub(w, p, end, walk_rw2_series);
        } else if ((tag & 7) == WT_EGROUP) {
            *end_group = number;
            return p;
        } else if (number == 4 || number == 5) {
            return fail(w, "known field with the wrong wire type");
        } else {
            p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

/* --- The first series' labels ------------------------------------------------------------------ */

/* A `LabelBytes` message: name = 1 and value = 2 are singular bytes fields, so a repeated one
 * replaces the earlier (upb, like every protobuf parser, keeps the last); either field with
 * another wire type is an unknown field to upb, skipped like any other. */
static const uint8_t *walk_label(walker *w, const uint8_t *p, const uint8_t *end, uint32_t *end_group) {
    label_slices *label = w->label;
    label->name = label->value = p;
    label->name_len = label->value_len = 0;
    while (p < end) {
        uint32_t tag;
        const uint8_t *sub_end, *start;
        p = read_tag(w, p, end, &tag);
        if (p == NULL) return NULL;
        if (tag == ((1 << 3) | WT_LEN) || tag == ((2 << 3) | WT_LEN)) {
            start = read_length(w, p, end, &sub_end);
            if (start == NULL) return NULL;
            if ((tag >> 3) == 1) {
                label->name = start;
                label->name_len = sub_end - start;
            } else {
                label->value = start;
                label->value_len = sub_end - start;
            }
            p = sub_end;
        } else if ((tag & 7) == WT_EGROUP) {
            *end_group = tag >> 3;
            return p;
        } else {
            p = skip_field(w, p, end, tag);
        }
        if (p == NULL) return NULL;
    }
    return p;
}

/* (name, value) as str, decoded as remote_write._label_text decodes: UTF-8, errors replaced. */
static PyObject *label_pair(const uint8_t *name, Py_ssize_t name_len, const uint8_t *value, Py_ssize_t value_len) {
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) return NULL;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)name, name_len, "replace");
    if (text == NULL) goto failed;
    PyTuple_SET_ITEM(pair, 0, text);
    text = PyUnicode_DecodeUTF8((const char *)value, value_len, "replace");
    if (text == NULL) goto failed;
    PyTuple_SET_ITEM(pair, 1, text);
    return pair;
failed:
    Py_DECREF(pair);
    return NULL;
}

/* The content of the length-delimited field whose length varint is at `field`, already walked. */
static const uint8_t *field_content(const uint8_t *field, const uint8_t *end, const uint8_t **content_end) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    return read_length(&w, field, end, content_end);
}

/* 1.0: the series parsed on its own as `SeriesLabels` (so from the top depth, as upb parses
 * shape.timeseries[0]); every field 1 of wire type 2 is one Label, in wire order. Returns a new
 * tuple, empty when a label does not parse; NULL only with a Python exception (no memory). */
static PyObject *rw1_first_labels(const uint8_t *p, const uint8_t *end) {
    label_slices label;
    walker w = {DEPTH_LIMIT, NULL, NULL, &label};
    PyObject *labels = PyList_New(0);
    if (labels == NULL) return NULL;
    while (p < end && w.error == NULL) {
        uint32_t tag;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) break;
        if (tag == ((1 << 3) | WT_LEN)) {
            p = walk_sub(&w, p, end, walk_label);
            if (p == NULL) break;
            PyObject *pair = label_pair(label.name, label.name_len, label.value, label.value_len);
            if (pair == NULL || PyList_Append(labels, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(labels);
                return NULL;
            }
            Py_DECREF(pair);
        } else if ((tag & 7) == WT_EGROUP) {
            fail(&w, "end-group tag outside a group");
        } else {
            p = skip_field(&w, p, end, tag);
            if (p == NULL) break;
        }
    }
    PyObject *result = w.error == NULL ? PyList_AsTuple(labels) : PyTuple_New(0);
    Py_DECREF(labels);
    return result;
}

/* 2.0: the references of one series (field 1, packed or not, in any number of runs), one at a
 * time, truncated to 32 bits as upb stores a uint32. */
typedef struct {
    walker w;
    const uint8_t *p, *end;            /* the series' fields still to read */
    const uint8_t *packed, *packed_end; /* the rest of the current packed run */
} ref_reader;

/* 1 with *ref set, 0 after the last reference, -1 when the series does not parse. */
static int next_ref(ref_reader *r, uint32_t *ref) {
    uint64_t value;
    for (;;) {
        if (r->packed < r->packed_end) {
            r->packed = read_varint(&r->w, r->packed, r->packed_end, &value);
            if (r->packed == NULL) return -1;
            *ref = (uint32_t)value;
            return 1;
        }
        if (r->p >= r->end) return 0;
        uint32_t tag;
        r->p = read_tag(&r->w, r->p, r->end, &tag);
        if (r->p == NULL) return -1;
        if (tag == ((1 << 3) | WT_VARINT)) {
            r->p = read_varint(&r->w, r->p, r->end, &value);
            if (r->p == NULL) return -1;
            *ref = (uint32_t)value;
            return 1;
        }
        if (tag == ((1 << 3) | WT_LEN)) {
            r->packed = read_length(&r->w, r->p, r->end, &r->packed_end);
            if (r->packed == NULL) return -1;
            r->p = r->packed_end;
        } else if ((tag & 7) == WT_EGROUP) {
            return -1;
        } else {
            r->p = skip_field(&r->w, r->p, r->end, tag);
            if (r->p == NULL) return -1;
        }
    }
}

static void ref_reader_init(ref_reader *r, const uint8_t *p, const uint8_t *end) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    r->w = w;
    r->p = p;
    r->end = end;
    r->packed = r->packed_end = NULL;
}

typedef struct {
    const uint8_t *text;
    Py_ssize_t len;
} symbol_slice;

/* One reference of the series: the symbol it names and where it stands in the series. */
typedef struct {
    uint32_t ref, at;
} wanted_ref;

static int by_ref(const void *a, const void *b) {
    uint32_t x = ((const wanted_ref *)a)->ref, y = ((const wanted_ref *)b)->ref;
    return (x > y) - (x < y);
}

/* Resolves `count` references sorted by symbol (symbols[at] = the symbol `ref` names) in one scan of
 * the request's symbols (field 4 at its top level, in wire order, before or after the series),
 * stopping at the highest. 0, or -1 when the request has fewer symbols or does not parse. */
static int resolve_symbols(const uint8_t *p, const uint8_t *end, const wanted_ref *wanted, uint64_t count,
                           symbol_slice *symbols) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    uint64_t index = 0, done = 0;
    while (p < end && done < count) {
        uint32_t tag;
        const uint8_t *sub_end, *start;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) return -1;
        if (tag == ((4 << 3) | WT_LEN)) {
            start = read_length(&w, p, end, &sub_end);
            if (start == NULL) return -1;
            for (; done < count && wanted[done].ref == index; done++) {
                symbols[wanted[done].at].text = start;
                symbols[wanted[done].at].len = sub_end - start;
            }
            index++;
            p = sub_end;
        } else if ((tag & 7) == WT_EGROUP) {
            return -1;
        } else {
            p = skip_field(&w, p, end, tag);
            if (p == NULL) return -1;
        }
    }
    return done == count ? 0 : -1;
}

/* 2.0: the series parsed on its own as `SeriesLabelRefs`, its references resolved through the
 * request's `symbols` entries. Same contract as rw1_first_labels. The scratch memory is per
 * reference of the first series (less than the labels returned), never per symbol: a huge
 * symbols table costs one scan up to the highest reference, no allocation. */
static PyObject *rw2_first_labels(const uint8_t *request, const uint8_t *request_end, const uint8_t *p,
                                  const uint8_t *end, uint64_t symbols) {
    ref_reader r;
    uint32_t ref, highest = 0;
    uint64_t refs = 0;
    int more;
    ref_reader_init(&r, p, end);
    while ((more = next_ref(&r, &ref)) == 1) {
        refs++;
        if (ref > highest) highest = ref;
    }
    if (more < 0 || refs == 0 || refs % 2 || highest >= symbols) return PyTuple_New(0);
    PyObject *labels = NULL;
    wanted_ref *wanted = PyMem_New(wanted_ref, (size_t)refs);
    symbol_slice *resolved = PyMem_New(symbol_slice, (size_t)refs);
    if (wanted == NULL || resolved == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The same bytes read a second time: they parsed the first. */
    ref_reader_init(&r, p, end);
    for (uint64_t i = 0; i < refs; i++) {
        next_ref(&r, &wanted[i].ref);
        wanted[i].at = (uint32_t)i; /* a series is under 2 GiB: fewer references than 2^31 */
    }
    qsort(wanted, (size_t)refs, sizeof *wanted, by_ref);
    if (resolve_symbols(request, request_end, wanted, refs, resolved) < 0) {
        labels = PyTuple_New(0);
        goto done;
    }
    labels = PyTuple_New((Py_ssize_t)(refs / 2));
    if (labels == NULL) goto done;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)(refs / 2); i++) {
        const symbol_slice *name = &resolved[2 * i], *value = &resolved[2 * i + 1];
        PyObject *pair = label_pair(name->text, name->len, value->text, value->len);
        if (pair == NULL) {
            Py_CLEAR(labels);
            goto done;
        }
        PyTuple_SET_ITEM(labels, i, pair);
    }
done:
    PyMem_Free(wanted);
    PyMem_Free(resolved);
    return labels;
}

/* --- 2.0 metadata: one item per metric family ---------------------------------------------------- */

/* Mimir keeps one metadata entry per metric family of a 2.0 request (MetricMetadataUnmarshalRW2
 * into a dedupingMetadataSet, pkg/mimirpb): the family is the series' `__name__` value without the
 * OpenMetrics suffix its type implies (normalizeMetricName), and a Metadata counts when its type
 * is set or its help or unit is not empty. remote_write.py's `_rw2_metadata_families` is the upb
 * twin and names where both differ from Mimir.
 *
 * Memory and time stay proportional to the body whatever its shape: one scan of the symbols keeps
 * two bits per symbol (is it `__name__`, is it empty); the series then mark, in four more bits per
 * symbol, which names count under which type class; a last scan of the symbols hashes each marked
 * (name, class) once into a set of 16-byte slots (at most one per 15 bytes of body). */

enum { CLASS_OTHER = 0, CLASS_HISTOGRAM = 1, CLASS_GAUGEHISTOGRAM = 2, CLASS_SUMMARY = 3 };

/* Metadata types 3, 4 and 5 (histogram, gauge histogram, summary) cut a suffix; any other keeps the name. */
static unsigned type_class(uint32_t type) {
    return type == 3 ? CLASS_HISTOGRAM : type == 4 ? CLASS_GAUGEHISTOGRAM : type == 5 ? CLASS_SUMMARY : CLASS_OTHER;
}

typedef struct {
    uint8_t *is_name, *non_empty; /* a bit per symbol */
    uint8_t *classes;             /* four bits per symbol: the type classes its name counts under */
    uint64_t count, marked;       /* symbols; (name, class) marks set */
} symbol_marks;

static int bit(const uint8_t *bits, uint64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
static unsigned nibble(const uint8_t *nibbles, uint64_t i) { return (nibbles[i >> 1] >> ((i & 1) * 4)) & 0xF; }

static int read_symbol_bits(const uint8_t *p, const uint8_t *end, uint64_t count, symbol_marks *out) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    out->is_name = PyMem_RawCalloc((size_t)(count / 8 + 1), 1);
    out->non_empty = PyMem_RawCalloc((size_t)(count / 8 + 1), 1);
    out->classes = PyMem_RawCalloc((size_t)(count / 2 + 1), 1);
    out->count = out->marked = 0;
    if (out->is_name == NULL || out->non_empty == NULL || out->classes == NULL) return -1;
    while (p != NULL && p < end && out->count < count) {
        uint32_t tag;
        const uint8_t *sub_end, *start;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) break;
        if (tag != ((4 << 3) | WT_LEN)) {
            p = skip_field(&w, p, end, tag);
            continue;
        }
        start = read_length(&w, p, end, &sub_end);
        if (start == NULL) break;
        uint64_t i = out->count++;
        if (sub_end - start == 8 && memcmp(start, "__name__", 8) == 0) out->is_name[i >> 3] |= (uint8_t)(1u << (i & 7));
        if (sub_end > start) out->non_empty[i >> 3] |= (uint8_t)(1u << (i & 7));
        p = sub_end;
    }
    return 0;
}

/* Mimir's rw2PagedSymbols.get: reference 0 is "" whatever symbols[0] holds; past the table there
 * is no symbol (Mimir refuses the request). */
static int ref_is_name(const symbol_marks *s, uint32_t ref) { return ref != 0 && ref < s->count && bit(s->is_name, ref); }
static int ref_has_text(const symbol_marks *s, uint32_t ref) {
    return ref != 0 && ref < s->count && bit(s->non_empty, ref);
}

/* The reference of the series' metric name: the value of its last `__name__` label, its reference
 * runs read in wire order as one list. 0 (no name) when they do not pair up or one is outside the
 * table. */
static uint32_t series_name_ref(const uint8_t *p, const uint8_t *end, const symbol_marks *s) {
    ref_reader r;
    uint32_t label, value, name = 0;
    int more;
    ref_reader_init(&r, p, end);
    while ((more = next_ref(&r, &label)) == 1) {
        if (next_ref(&r, &value) != 1 || label >= s->count || value >= s->count) return 0;
        if (ref_is_name(s, label)) name = value;
    }
    return more < 0 ? 0 : name;
}

/* One Metadata message (it parsed in pass 1): whether it counts, and its type. */
static int metadata_counts(const uint8_t *p, const uint8_t *end, const symbol_marks *s, uint32_t *type_out) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    uint32_t type = 0, help_ref = 0, unit_ref = 0;
    while (p != NULL && p < end) {
        uint32_t tag;
        uint64_t value = 0;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) return 0;
        if (tag == ((1 << 3) | WT_VARINT) || tag == ((3 << 3) | WT_VARINT) || tag == ((4 << 3) | WT_VARINT)) {
            p = read_varint(&w, p, end, &value);
            uint32_t number = tag >> 3; /* the last of each wins, as Mimir and upb keep it */
            *(number == 1 ? &type : number == 3 ? &help_ref : &unit_ref) = (uint32_t)value;
        } else {
            p = skip_field(&w, p, end, tag);
        }
    }
    *type_out = type;
    return p != NULL && (type != 0 || ref_has_text(s, help_ref) || ref_has_text(s, unit_ref));
}

/* Marks, per name symbol, the type classes of the Metadata that count under it. */
static void mark_families(const uint8_t *p, const uint8_t *end, symbol_marks *s) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    while (p != NULL && p < end) {
        uint32_t tag;
        const uint8_t *series, *series_end;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) break;
        if (tag != ((5 << 3) | WT_LEN)) {
            p = skip_field(&w, p, end, tag);
            continue;
        }
        series = read_length(&w, p, end, &series_end);
        if (series == NULL) break;
        p = series_end;
        int named = 0;
        uint32_t name = 0;
        for (const uint8_t *q = series; q != NULL && q < series_end;) {
            const uint8_t *meta, *meta_end;
            uint32_t type;
            q = read_tag(&w, q, series_end, &tag);
            if (q == NULL) break;
            if (tag != ((5 << 3) | WT_LEN)) {
                q = skip_field(&w, q, series_end, tag);
                continue;
            }
            meta = read_length(&w, q, series_end, &meta_end);
            if (meta == NULL) break;
            q = meta_end;
            if (!named) { /* only series with metadata need their name */
                name = series_name_ref(series, series_end, s);
                named = 1;
            }
            if (name == 0 || !metadata_counts(meta, meta_end, s, &type)) continue;
            uint8_t flag = (uint8_t)((1u << type_class(type)) << ((name & 1) * 4));
            if (!(s->classes[name >> 1] & flag)) {
                s->classes[name >> 1] |= flag;
                s->marked++;
            }
        }
    }
}

static int cut_suffix(const uint8_t *text, uint32_t *len, const char *suffix) {
    uint32_t n = (uint32_t)strlen(suffix);
    if (*len < n || memcmp(text + *len - n, suffix, n) != 0) return 0;
    *len -= n;
    return 1;
}

/* Mimir's normalizeMetricName: the first suffix that matches is cut; _total and _info stay. */
static uint32_t family_length(const uint8_t *text, uint32_t len, unsigned class) {
    switch (class) {
        case CLASS_SUMMARY:
            if (!cut_suffix(text, &len, "_count")) cut_suffix(text, &len, "_sum");
            break;
        case CLASS_HISTOGRAM:
            if (!cut_suffix(text, &len, "_bucket") && !cut_suffix(text, &len, "_count")) cut_suffix(text, &len, "_sum");
            break;
        case CLASS_GAUGEHISTOGRAM:
            if (!cut_suffix(text, &len, "_bucket") && !cut_suffix(text, &len, "_gcount")) cut_suffix(text, &len, "_gsum");
            break;
        default:
            break;
    }
    return len;
}

/* A family name as a slice of the body (a symbol is under 2 GiB). */
typedef struct {
    const uint8_t *text; /* NULL: an empty slot */
    uint32_t len, hash;
} family_slot;

static uint32_t fnv1a(const uint8_t *p, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The distinct families of the marked names, from one more scan of the symbols; -1 when out of
 * memory. The set has at least twice as many slots as there are marks, so it never fills. */
static int64_t count_families(const uint8_t *p, const uint8_t *end, const symbol_marks *s) {
    walker w = {DEPTH_LIMIT, NULL, NULL, NULL};
    uint64_t slots = 8, index = 0;
    while (slots < 2 * s->marked) slots *= 2;
    family_slot *set = PyMem_RawCalloc((size_t)slots, sizeof *set);
    if (set == NULL) return -1;
    int64_t families = 0;
    while (p != NULL && p < end && index < s->count) {
        uint32_t tag;
        const uint8_t *sub_end, *start;
        p = read_tag(&w, p, end, &tag);
        if (p == NULL) break;
        if (tag != ((4 << 3) | WT_LEN)) {
            p = skip_field(&w, p, end, tag);
            continue;
        }
        start = read_length(&w, p, end, &sub_end);
        if (start == NULL) break;
        p = sub_end;
        unsigned classes = nibble(s->classes, index++);
        for (unsigned class = 0; classes; class++, classes >>= 1) {
            if (!(classes & 1)) continue;
            uint32_t len = family_length(start, (uint32_t)(sub_end - start), class);
            if (len == 0) continue;
            uint32_t hash = fnv1a(start, len);
            for (uint64_t j = hash & (slots - 1);; j = (j + 1) & (slots - 1)) {
                family_slot *slot = &set[j];
                if (slot->text == NULL) {
                    *slot = (family_slot){start, len, hash};
                    families++;
                    break;
                }
                if (slot->hash == hash && slot->len == len && memcmp(slot->text, start, len) == 0) break;
            }
        }
    }
    PyMem_RawFree(set);
    return families;
}

/* The metric families of a 2.0 request that passed pass 1 with `count` symbols; -1 when out of
 * memory. */
static int64_t rw2_metadata_families(const uint8_t *p, const uint8_t *end, uint64_t count) {
    symbol_marks marks = {NULL, NULL, NULL, 0, 0};
    int64_t families = -1;
    if (read_symbol_bits(p, end, count, &marks) == 0) {
        mark_families(p, end, &marks);
        families = count_families(p, end, &marks);
    }
    PyMem_RawFree(marks.is_name);
    PyMem_RawFree(marks.non_empty);
    PyMem_RawFree(marks.classes);
    return families;
}

/* --- Python ------------------------------------------------------------------------------------ */

static PyObject *walker_count(PyObject *module, PyObject *args) {
    Py_buffer view;
    int protocol;
    if (!PyArg_ParseTuple(args, "y*i:count", &view, &protocol)) return NULL;
    if (protocol != 1 && protocol != 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "protocol must be 1 or 2");
        return NULL;
    }
    walk_result out = {0, 0, 0, 0, 0, 0, 0, NULL};
    int64_t families = 0;
    walker w = {DEPTH_LIMIT, NULL, &out, NULL};
    const uint8_t *start = (const uint8_t *)view.buf;
    const uint8_t *end = start + view.len;
    uint32_t end_group = NO_GROUP;
    const uint8_t *p;
    /* The exported buffer cannot change size while held, so the walk can let other threads run. */
    Py_BEGIN_ALLOW_THREADS
    p = (protocol == 1 ? walk_rw1_request : walk_rw2_request)(&w, start, end, &end_group);
    if (p != NULL && end_group == NO_GROUP && protocol == 2 && out.metadata_messages > 0)
        families = rw2_metadata_families(start, end, out.symbols);
    Py_END_ALLOW_THREADS
    if (families < 0) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (protocol == 2) out.metadata = (uint64_t)families;
    if (p != NULL && end_group != NO_GROUP) fail(&w, "end-group tag outside a group");
    if (w.error != NULL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, w.error);
        return NULL;
    }
    PyObject *labels;
    if (out.first_series == NULL) {
        labels = PyTuple_New(0);
    } else {
        const uint8_t *series_end = NULL;
        /* It parsed in the pass; checked again rather than assumed. */
        const uint8_t *series = field_content(out.first_series, end, &series_end);
        if (series == NULL)
            labels = PyTuple_New(0);
        else
            labels = protocol == 1 ? rw1_first_labels(series, series_end)
                                   : rw2_first_labels(start, end, series, series_end, out.symbols);
    }
    PyBuffer_Release(&view);
    if (labels == NULL) return NULL;
    return Py_BuildValue("(KKKKKN)", (unsigned long long)out.series, (unsigned long long)out.float_samples,
                         (unsigned long long)out.histogram_samples, (unsigned long long)out.exemplars,
                         (unsigned long long)out.metadata, labels);
}

static PyMethodDef walker_methods[] = {
    {"count", walker_count, METH_VARARGS,
     "count(body, protocol) -> (series, float_samples, histogram_samples, exemplars, metadata, labels).\n"
     "protocol is 1 or 2; labels are the first series' (name, value) str pairs, () when it has none or\n"
     "they do not parse; raises ValueError saying why a body is refused."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef walker_module = {
    PyModuleDef_HEAD_INIT, "_walker", "Compiled remote_write counting walker.", -1, walker_methods,
};

PyMODINIT_FUNC PyInit__walker(void) { return PyModule_Create(&walker_module); }
