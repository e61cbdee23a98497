// wirepool's fd watcher: readiness of a file descriptor on the main thread's event loop (libuv
// uv_poll, level-triggered), which Node's JavaScript API does not offer for a descriptor that is
// neither a socket Node created nor a pipe. The dataplane uses it at idle: instead of an I/O
// thread waking in poll() and then waking the main thread (two cross-thread wake-ups per
// packet), the main loop itself wakes when the UDP socket or the TUN device has something to read
// (src/io/fd-watch.ts is the typed wrapper; src/dataplane/pipeline.ts "idle intake").
//
//   create(fd, callback) -> handle   a stopped watcher; callback(events) runs on the loop thread
//                                    (events: 1 readable; a negative libuv error code on failure)
//   start(handle) / stop(handle)     watch for readability / stop watching (cheap: one epoll_ctl)
//   close(handle)                    stop and free; the handle must not be used again
//   setHook(handle, hook | null)     a native hook (idle.h: an External from the TUN or the UDP
//                                    addon) that runs first when the fd is readable; when it
//                                    handled what was there, the callback runs IDLE_SETTLE_MS
//                                    later instead of now (with events 1, as for readability)
//
// Watchers are unreferenced: they never keep the process alive by themselves. The callback runs
// through napi_make_callback, so promise jobs and process.nextTick callbacks queued by it run
// before the loop goes on; an exception it throws goes to process 'uncaughtException'.
#include <stdlib.h>
#include <node_api.h>
#include <uv.h>
#include "idle.h"

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;
  int closed;         // close() ran (or the finalizer closed it): no more callbacks, no more use
  int handle_closed;  // libuv's close callback ran
  int finalized;      // the JS handle was garbage-collected
  wp_fd_hook *hook;   // setHook's, or NULL
  napi_ref hook_ref;  // keeps the hook's External alive
} watcher;

// Settle timers for the loop the hooks run on (the main thread's), one armed per hook group (a
// pipeline's two hooks share its lease): after a packet a hook handled, one callback of that
// group's watchers runs IDLE_SETTLE_MS later, however many of the group's hooks handled packets
// meanwhile; a readable callback of the group that runs for any other reason first cancels it
// (that turn settles). Another group's callbacks (another device in the process) leave it be.
// Slots are taken only while armed; with all of them armed, a hook's callback runs at once.
#define SETTLE_SLOTS 16
static struct {
  uv_timer_t timer;
  int ready;          // timer initialised (on settle_loop; its data points back at this slot)
  const void *group;  // the group it is armed for
  watcher *for_w;     // the watcher whose callback it runs; NULL: not armed
} settles[SETTLE_SLOTS];
static uv_loop_t *settle_loop;  // NULL until first used

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static void call_js(watcher *w, int status, int events) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv);  // MakeCallback needs an object receiver
    napi_create_int32(env, status < 0 ? status : (events & UV_READABLE ? 1 : 0), &arg);
    if (napi_make_callback(env, w->context, recv, cb, 1, &arg, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_settle(uv_timer_t *t) {
  watcher **for_w = t->data;
  watcher *w = *for_w;
  *for_w = NULL;
  if (w != NULL && !w->closed) call_js(w, 0, UV_READABLE);
}

/** Arms a settle timer for w's callback unless its group has one armed; 0 when it cannot (then call now). */
static int settle_later(watcher *w) {
  if (settle_loop == NULL) settle_loop = w->poll.loop;
  if (settle_loop != w->poll.loop) return 0;
  const void *g = w->hook->group;
  int free_slot = -1;
  for (int i = 0; i < SETTLE_SLOTS; i++) {
    if (settles[i].for_w == NULL) {
      if (free_slot < 0) free_slot = i;
    } else if (settles[i].group == g) {
      return 1;
    }
  }
  if (free_slot < 0) return 0;
  if (!settles[free_slot].ready) {
    if (uv_timer_init(settle_loop, &settles[free_slot].timer) != 0) return 0;
    uv_unref((uv_handle_t *)&settles[free_slot].timer);
    settles[free_slot].timer.data = &settles[free_slot].for_w;
    settles[free_slot].ready = 1;
  }
  settles[free_slot].group = g;
  settles[free_slot].for_w = w;
  uv_timer_start(&settles[free_slot].timer, on_settle, IDLE_SETTLE_MS, 0);
  return 1;
}

/** Disarms the settle of group g (a callback of the group runs now), or the one for watcher w. */
static void settle_cancel(const void *g, const watcher *w) {
  if (settle_loop == NULL) return;
  for (int i = 0; i < SETTLE_SLOTS; i++) {
    if (settles[i].for_w != NULL && ((g != NULL && settles[i].group == g) || settles[i].for_w == w)) {
      settles[i].for_w = NULL;
      uv_timer_stop(&settles[i].timer);
    }
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  watcher *w = handle->data;
  if (w->closed) return;
  if (status >= 0 && w->hook != NULL && w->hook->run(w->hook, w->fd) == WP_HOOK_DONE && settle_later(w)) return;
  // A readable callback runs now: its turn settles its group. An error's callback only hands the
  // input back (no turn), so a settle still due stays armed.
  if (status >= 0 && w->hook != NULL && w->poll.loop == settle_loop) settle_cancel(w->hook->group, NULL);
  call_js(w, status, events);
}

// The struct is freed when both libuv and the JS handle are done with it.
static void on_close(uv_handle_t *handle) {
  watcher *w = handle->data;
  w->handle_closed = 1;
  if (w->finalized) free(w);
}

static void do_close(napi_env env, watcher *w) {
  w->closed = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  if (w->hook_ref != NULL) napi_delete_reference(env, w->hook_ref);
  w->hook = NULL;
  w->hook_ref = NULL;
  napi_async_destroy(env, w->context);
  settle_cancel(NULL, w);
  uv_close((uv_handle_t *)&w->poll, on_close);
}

static void finalize(napi_env env, void *data, void *hint) {
  watcher *w = data;
  w->finalized = 1;
  if (!w->closed) do_close(env, w);  // dropped without close(): stop watching now
  else if (w->handle_closed) free(w);
}

static watcher *get_watcher(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) return NULL;
  watcher *w = p;
  return w->closed ? NULL : w;
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  napi_valuetype t;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "create(fd, callback): fd must be a descriptor");
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) return throw_type(env, "create(fd, callback): callback must be a function");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "create: no event loop");
  watcher *w = calloc(1, sizeof *w);
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "create: out of memory");
    return NULL;
  }
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r != 0) {
    free(w);
    napi_throw_error(env, uv_err_name(r), uv_strerror(r));
    return NULL;
  }
  w->poll.data = w;
  w->env = env;
  w->fd = fd;
  uv_unref((uv_handle_t *)&w->poll);
  napi_value name;
  napi_create_string_utf8(env, "wirepool:fdwatch", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_async_init(env, NULL, name, &w->context);
  napi_value ext;
  napi_create_external(env, w, finalize, NULL, &ext);
  return ext;
}

/** The open watcher that is argument 0 of a call, or NULL after throwing a TypeError naming `usage`. */
static watcher *arg_watcher(napi_env env, napi_callback_info info, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watcher *w = argc < 1 ? NULL : get_watcher(env, argv[0]);
  if (w == NULL) throw_type(env, usage);
  return w;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  watcher *w = arg_watcher(env, info, "start(handle): not an open watcher");
  if (w == NULL) return NULL;
  napi_value out;
  napi_create_int32(env, uv_poll_start(&w->poll, UV_READABLE, on_poll), &out);
  return out;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  watcher *w = arg_watcher(env, info, "stop(handle): not an open watcher");
  if (w != NULL) uv_poll_stop(&w->poll);
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  watcher *w = arg_watcher(env, info, "close(handle): not an open watcher");
  if (w != NULL) do_close(env, w);
  return NULL;
}

static napi_value js_set_hook(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watcher *w = argc < 2 ? NULL : get_watcher(env, argv[0]);
  if (w == NULL) return throw_type(env, "setHook(handle, hook): not an open watcher");
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok) return NULL;
  if (t != napi_null && (t != napi_external || napi_get_value_external(env, argv[1], &p) != napi_ok || p == NULL ||
                         ((wp_fd_hook *)p)->magic != WP_HOOK_MAGIC))
    return throw_type(env, "setHook(handle, hook): hook must be an idle hook or null");
  if (w->hook_ref != NULL) napi_delete_reference(env, w->hook_ref);
  w->hook_ref = NULL;
  w->hook = NULL;
  if (p != NULL) {
    if (napi_create_reference(env, argv[1], 1, &w->hook_ref) != napi_ok) return throw_type(env, "setHook: cannot keep the hook");
    w->hook = p;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
    {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
    {"setHook", NULL, js_set_hook, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
