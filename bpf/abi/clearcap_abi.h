/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The only structures shared between the BPF programs and userspace, one
 * header per record family (record.h says the append-only rule), and the
 * static asserts that pin their layouts.
 */
#ifndef CLEARCAP_ABI_H
#define CLEARCAP_ABI_H

#include "record.h"
#include "data.h"
#include "keys.h"
#include "packet.h"
#include "maps.h"

#ifdef __cplusplus
static_assert(sizeof(struct cc_record_hdr) == 8, "cc_record_hdr layout");
static_assert(sizeof(struct cc_data_event) == 128, "cc_data_event layout");
static_assert(__builtin_offsetof(struct cc_data_event, ts_ns) == 24, "ts_ns offset");
static_assert(__builtin_offsetof(struct cc_data_event, seq) == 48, "seq offset");
static_assert(__builtin_offsetof(struct cc_data_event, saddr) == 80, "saddr offset");
static_assert(__builtin_offsetof(struct cc_data_event, comm) == 112, "comm offset");
static_assert(sizeof(struct cc_filter_cfg) == 24, "cc_filter_cfg layout");
static_assert(sizeof(struct cc_key_path) == 20, "cc_key_path layout");
static_assert(sizeof(struct cc_key_layout) == 200, "cc_key_layout layout");
static_assert(__builtin_offsetof(struct cc_keys_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_keys_event ts_ns offset");
static_assert(__builtin_offsetof(struct cc_keys_event, laddr) == 48, "cc_keys_event laddr offset");
static_assert(__builtin_offsetof(struct cc_keys_event, items) == 96, "cc_keys_event items offset");
static_assert(sizeof(struct cc_keys_event) == 736, "cc_keys_event layout");
static_assert(sizeof(struct cc_packet_event) == 32, "cc_packet_event layout");
static_assert(sizeof(struct cc_fd_layout) == 24, "cc_fd_layout layout");
static_assert(__builtin_offsetof(struct cc_packet_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_packet_event ts_ns offset");
#else
_Static_assert(sizeof(struct cc_record_hdr) == 8, "cc_record_hdr layout");
_Static_assert(sizeof(struct cc_data_event) == 128, "cc_data_event layout");
_Static_assert(__builtin_offsetof(struct cc_data_event, ts_ns) == 24, "ts_ns offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, seq) == 48, "seq offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, saddr) == 80, "saddr offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, comm) == 112, "comm offset");
_Static_assert(sizeof(struct cc_filter_cfg) == 24, "cc_filter_cfg layout");
_Static_assert(sizeof(struct cc_key_path) == 20, "cc_key_path layout");
_Static_assert(sizeof(struct cc_key_layout) == 200, "cc_key_layout layout");
_Static_assert(__builtin_offsetof(struct cc_keys_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_keys_event ts_ns offset");
_Static_assert(__builtin_offsetof(struct cc_keys_event, laddr) == 48, "cc_keys_event laddr offset");
_Static_assert(__builtin_offsetof(struct cc_keys_event, items) == 96, "cc_keys_event items offset");
_Static_assert(sizeof(struct cc_keys_event) == 736, "cc_keys_event layout");
_Static_assert(sizeof(struct cc_packet_event) == 32, "cc_packet_event layout");
_Static_assert(sizeof(struct cc_fd_layout) == 24, "cc_fd_layout layout");
_Static_assert(__builtin_offsetof(struct cc_packet_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_packet_event ts_ns offset");
#endif

#endif /* CLEARCAP_ABI_H */
