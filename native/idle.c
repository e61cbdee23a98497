// The idle hooks' common part (idle.h): the options main passes, the ring's free slots, and the
// External that carries a hook to fdwatch.c. Compiled into the TUN and the UDP addons.
#include <stdlib.h>
#include "idle.h"

static const char *typed(napi_env env, napi_value opts, const char *key, napi_typedarray_type want, void **data, size_t *count,
                         napi_ref *ref) {
  napi_value v, ab;
  bool is = false;
  napi_typedarray_type type;
  size_t off;
  if (napi_get_named_property(env, opts, key, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, count, data, &ab, &off) != napi_ok || type != want)
    return key;
  return napi_create_reference(env, v, 1, ref) == napi_ok ? NULL : key;
}

static const char *int32(napi_env env, napi_value opts, const char *key, int32_t *out) {
  napi_value v;
  if (napi_get_named_property(env, opts, key, &v) != napi_ok || napi_get_value_int32(env, v, out) != napi_ok) return key;
  return NULL;
}

const char *il_read_common(napi_env env, napi_value opts, il_common *c, size_t scratch_len) {
  memset(c, 0, sizeof *c);
  size_t lease_len = 0, route_len = 0, engine_len = 0;
  void *keys = NULL, *key_gen = NULL, *route = NULL, *engine = NULL;
  const char *bad = NULL;
  if ((bad = typed(env, opts, "lease", napi_int32_array, (void **)&c->lease, &lease_len, &c->refs[0])) ||
      (bad = typed(env, opts, "ctl", napi_int32_array, (void **)&c->ctl, &c->ctl_len, &c->refs[1])) ||
      (bad = typed(env, opts, "data", napi_uint8_array, (void **)&c->data, &c->data_len, &c->refs[2])) ||
      (bad = typed(env, opts, "meta", napi_int32_array, (void **)&c->meta, &c->meta_len, &c->refs[3])) ||
      (bad = typed(env, opts, "keys", napi_uint8_array, &keys, &c->st.keys_len, &c->refs[4])) ||
      (bad = typed(env, opts, "keyGen", napi_int32_array, &key_gen, &c->st.key_gen_len, &c->refs[5])) ||
      (bad = typed(env, opts, "routeVersion", napi_int32_array, &route, &route_len, &c->refs[6])) ||
      (bad = typed(env, opts, "engineVersion", napi_int32_array, &engine, &engine_len, &c->refs[7])) ||
      (bad = typed(env, opts, "slots", napi_int32_array, (void **)&c->slots, &c->slots_len, &c->refs[8])) ||
      (bad = typed(env, opts, "out", napi_int32_array, (void **)&c->out, &c->out_len, &c->refs[9])) ||
      (bad = int32(env, opts, "slotBytes", &c->slot_bytes)) || (bad = int32(env, opts, "ringSlots", &c->ring_slots)) ||
      (bad = int32(env, opts, "batch", &c->batch)) || (bad = int32(env, opts, "iProduced", &c->i_produced)) ||
      (bad = int32(env, opts, "iFreed", &c->i_freed))) {
    il_release_common(env, c);
    return bad;
  }
  int32_t i_udp_gen = -1;
  if ((bad = int32(env, opts, "iUdpGen", &i_udp_gen)) != NULL) {
    il_release_common(env, c);
    return bad;
  }
  c->st.keys = keys;
  c->st.key_gen = key_gen;
  c->st.route_ver = route;
  c->st.engine_ver = engine;
  int ok = lease_len >= IL_WORDS && route_len >= 1 && engine_len >= 1 && c->slot_bytes > 0 && c->ring_slots > 0 &&
           (c->ring_slots & (c->ring_slots - 1)) == 0 && (size_t)c->ring_slots * (size_t)c->slot_bytes <= c->data_len &&
           (size_t)c->ring_slots * 32 <= c->meta_len && c->batch > 0 && (size_t)c->batch <= c->slots_len && c->out_len >= 8 &&
           c->i_produced >= 0 && (size_t)c->i_produced < c->ctl_len && c->i_freed >= 0 && (size_t)c->i_freed < c->ctl_len &&
           i_udp_gen >= 0 && (size_t)i_udp_gen < c->ctl_len;
  if (!ok) {
    il_release_common(env, c);
    return "a size or index";
  }
  if (c->batch > c->ring_slots) c->batch = c->ring_slots;
  c->st.udp_gen = c->ctl + i_udp_gen;
  c->scratch = malloc(scratch_len);
  c->scratch_len = scratch_len;
  if (c->scratch == NULL) {
    il_release_common(env, c);
    return "memory";
  }
  return NULL;
}

void il_release_common(napi_env env, il_common *c) {
  free(c->scratch);
  c->scratch = NULL;
  for (int i = 0; i < IL_REFS; i++) {
    if (c->refs[i] != NULL) napi_delete_reference(env, c->refs[i]);
    c->refs[i] = NULL;
  }
}

int il_list_free_slots(il_common *c, int quiet_word, int at_word) {
  const int32_t *L = c->lease;
  int32_t produced = __atomic_load_n(&c->ctl[c->i_produced], __ATOMIC_ACQUIRE);
  if (L[quiet_word] != 1 || produced != L[at_word]) return 0;
  uint32_t used = (uint32_t)produced - (uint32_t)__atomic_load_n(&c->ctl[c->i_freed], __ATOMIC_ACQUIRE);
  if (used > (uint32_t)c->ring_slots || (uint32_t)c->ring_slots - used < (uint32_t)c->batch) return 0;
  for (int32_t i = 0; i < c->batch; i++) c->slots[i] = (int32_t)((uint32_t)(produced + i) & (uint32_t)(c->ring_slots - 1));
  return c->batch;
}

napi_value il_make_hook(napi_env env, wp_fd_hook *hook, napi_finalize release) {
  napi_value ext;
  if (napi_create_external(env, hook, release, NULL, &ext) != napi_ok) return NULL;
  return ext;
}
