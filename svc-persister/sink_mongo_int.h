/* sink_mongo_int.h — what sink_mongo.c (the writes) and sink_mongo_doc.c
 * (documents and the server's answers) share. Private to svc-persister. */
#ifndef SVC_PERSISTER_SINK_MONGO_INT_H
#define SVC_PERSISTER_SINK_MONGO_INT_H

#include "persister.h"

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

/* The document of op's record: _id = key, the dataset's columns, tb_*
 * (dec128: decimals as Decimal128, else as their exact text). */
void pers_mongo_doc_build(bson_t *doc, const pers_dataset *ds, const pers_op *op, bool dec128);

/* Mark op refused (PERS_DEAD) with "prefix code: reason", the reason from
 * pers_mongo_reason (no values). */
void pers_mongo_mark_dead(pers_op *op, const char *prefix, int32_t code, const char *msg);

/* Whether a failed command was refused for the data it carries. */
bool pers_mongo_refused_data(const bson_error_t *err);

#endif
