// wirepool's native helper: the one socket option Node.js dgram cannot set.
// setMark(fd, mark) applies SO_MARK (Linux, needs CAP_NET_ADMIN) so the encrypted UDP
// traffic of an interface that routes 0.0.0.0/0 through itself is steered by wg-quick's
// policy rule (`not fwmark M table M`) instead of looping back into the tunnel.
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "setMark(fd, mark) takes two numbers");
    return NULL;
  }
  int32_t fd;
  uint32_t mark;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_uint32(env, argv[1], &mark) != napi_ok) {
    napi_throw_type_error(env, NULL, "setMark(fd, mark) takes two numbers");
    return NULL;
  }
  int err = 0;
#ifdef SO_MARK
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) err = errno;
#else
  err = ENOSYS;
#endif
  napi_value result;
  napi_create_int32(env, err, &result);
  return result;  // 0 on success, else the errno
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "setMark", NAPI_AUTO_LENGTH, set_mark, NULL, &fn);
  napi_set_named_property(env, exports, "setMark", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
