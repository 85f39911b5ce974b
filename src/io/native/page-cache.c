// What node:fs does not offer a worker about the page cache. Built by scripts/build-io-addon.ts
// (npm install's postinstall); loaded by src/io/page-cache.ts.
//
// readCached(fd, buffer, position): reads into `buffer` from file offset `position` only what the
// page cache holds, without waiting for the disk (preadv2 with RWF_NOWAIT). Returns the bytes read
// (0: none cached, or the end of the file) or -errno. A worker answers reads of cached data on its
// event loop this way, instead of handing each one to libuv's I/O threads and back (a thread
// wake-up, an eventfd write and an epoll wake-up for a copy of a few microseconds); what is not
// cached still goes to the threads, so a slow disk never stalls the loop.
//
// dropCached(fd): asks the kernel to drop the file's clean pages from the page cache
// (posix_fadvise POSIX_FADV_DONTNEED over the whole file). Returns 0 or -errno. Called once a
// written chunk file is fdatasynced, so that its pages are clean and go at once (dirty ones would
// only be queued for writeback); it never waits for the disk.
//
// addressOffset(buffer, align): the address of `buffer`'s first byte modulo `align` (a power of two).
// Direct I/O (O_DIRECT) needs buffers at aligned addresses, which JavaScript cannot see: a writer
// allocates a little more and starts where this says the alignment falls.

#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/uio.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value read_cached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "readCached(fd, buffer, position)");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "fd: a file descriptor");
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) return fail(env, "buffer: a Uint8Array");
  int64_t position;
  if (napi_get_value_int64(env, argv[2], &position) != napi_ok || position < 0) return fail(env, "position: a file offset");
  struct iovec iov = { data, length };
  ssize_t n;
  do n = preadv2(fd, &iov, 1, (off_t) position, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  napi_value result;
  napi_create_int64(env, n < 0 ? -errno : n, &result);
  return result;
}

static napi_value drop_cached(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return fail(env, "dropCached(fd)");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "fd: a file descriptor");
  int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); // returns the error number, not -1
  napi_value result;
  napi_create_int32(env, -rc, &result);
  return result;
}

static napi_value address_offset(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return fail(env, "addressOffset(buffer, align)");
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) return fail(env, "buffer: a Uint8Array");
  uint32_t align;
  if (napi_get_value_uint32(env, argv[1], &align) != napi_ok || align == 0 || (align & (align - 1)) != 0) return fail(env, "align: a power of two");
  napi_value result;
  napi_create_uint32(env, (uint32_t) ((uintptr_t) data & (align - 1)), &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "readCached", NAPI_AUTO_LENGTH, read_cached, NULL, &fn);
  napi_set_named_property(env, exports, "readCached", fn);
  napi_create_function(env, "dropCached", NAPI_AUTO_LENGTH, drop_cached, NULL, &fn);
  napi_set_named_property(env, exports, "dropCached", fn);
  napi_create_function(env, "addressOffset", NAPI_AUTO_LENGTH, address_offset, NULL, &fn);
  napi_set_named_property(env, exports, "addressOffset", fn);
  return exports;
}
