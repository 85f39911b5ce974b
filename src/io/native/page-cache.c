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
//
// readChecked(fd, buffer, position, blockBytes, crcs): a promise. On one of libuv's I/O threads,
// reads buffer.length bytes from `position` into `buffer`, then compares the CRC32C of each
// `blockBytes` block of them (the last may be shorter) with `crcs` (a Uint32Array, in order).
// Resolves with the index of the first block that differs, -1 when all match, -2 when the file
// ends first, or -(1000 + errno) when the read fails. A large read's check (a third of the FUSE
// mount's event loop when it read 1 MiB requests) then runs beside the read, not on the loop.
// The caller keeps the file open and leaves `buffer` alone until the promise settles.

#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

// The (fd, buffer, position) that readCached and readChecked begin with, from argv[0..2]; false
// (with a TypeError thrown) when one is not what it should be.
static int read_arguments(napi_env env, napi_value *argv, int32_t *fd, void **data, size_t *length, int64_t *position) {
  napi_typedarray_type type;
  const char *problem = NULL;
  if (napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) problem = "fd: a file descriptor";
  else if (napi_get_typedarray_info(env, argv[1], &type, length, data, NULL, NULL) != napi_ok || type != napi_uint8_array) problem = "buffer: a Uint8Array";
  else if (napi_get_value_int64(env, argv[2], position) != napi_ok || *position < 0) problem = "position: a file offset";
  if (problem != NULL) fail(env, problem);
  return problem == NULL;
}

static napi_value read_cached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "readCached(fd, buffer, position)");
  int32_t fd;
  size_t length;
  void *data;
  int64_t position;
  if (!read_arguments(env, argv, &fd, &data, &length, &position)) return NULL;
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

// CRC32C (Castagnoli, reflected 0x82F63B78): SSE 4.2's instruction where the CPU has it, else a table.
static uint32_t crc_table[256];
static int crc_hardware;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
#if defined(__x86_64__)
  crc_hardware = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_by_table(uint32_t crc, const uint8_t *p, size_t n) {
  while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_by_instruction(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = (uint32_t) c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

static uint32_t crc32c(const uint8_t *p, size_t n) {
#if defined(__x86_64__)
  if (crc_hardware) return ~crc_by_instruction(~0u, p, n);
#endif
  return ~crc_by_table(~0u, p, n);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer;
  int fd;
  uint8_t *data;
  size_t length;
  int64_t position;
  size_t block_bytes;
  uint32_t *crcs;
  size_t crc_count;
  int64_t result;
} checked_read;

static void checked_read_run(napi_env env, void *arg) {
  (void) env;
  checked_read *r = arg;
  for (size_t done = 0; done < r->length;) {
    ssize_t n = pread(r->fd, r->data + done, r->length - done, (off_t) (r->position + (int64_t) done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r->result = -(1000 + (int64_t) errno);
      return;
    }
    if (n == 0) {
      r->result = -2;
      return;
    }
    done += (size_t) n;
  }
  r->result = -1;
  size_t block = 0;
  for (size_t off = 0; off < r->length; off += r->block_bytes, block++) {
    size_t n = r->length - off < r->block_bytes ? r->length - off : r->block_bytes;
    if (block >= r->crc_count || crc32c(r->data + off, n) != r->crcs[block]) {
      r->result = (int64_t) block;
      return;
    }
  }
}

static void checked_read_done(napi_env env, napi_status status, void *arg) {
  checked_read *r = arg;
  napi_value result;
  if (status == napi_ok) {
    napi_create_int64(env, r->result, &result);
    napi_resolve_deferred(env, r->deferred, result);
  } else {
    napi_value message;
    napi_create_string_utf8(env, "readChecked: the read was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &result);
    napi_reject_deferred(env, r->deferred, result);
  }
  napi_delete_reference(env, r->buffer);
  napi_delete_async_work(env, r->work);
  free(r->crcs);
  free(r);
}

static napi_value read_checked(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "readChecked(fd, buffer, position, blockBytes, crcs)");
  int32_t fd;
  size_t length;
  void *data;
  int64_t position;
  if (!read_arguments(env, argv, &fd, &data, &length, &position)) return NULL;
  uint32_t block_bytes;
  if (napi_get_value_uint32(env, argv[3], &block_bytes) != napi_ok || block_bytes == 0) return fail(env, "blockBytes: a positive size");
  napi_typedarray_type type;
  size_t crc_count;
  void *crcs;
  if (napi_get_typedarray_info(env, argv[4], &type, &crc_count, &crcs, NULL, NULL) != napi_ok || type != napi_uint32_array) return fail(env, "crcs: a Uint32Array");
  checked_read *r = calloc(1, sizeof *r);
  if (r == NULL) return fail(env, "readChecked: out of memory");
  // The CRCs are copied (a few hundred bytes): the caller's array may change meanwhile.
  r->crcs = malloc(crc_count * sizeof(uint32_t) + 1);
  if (r->crcs == NULL) {
    free(r);
    return fail(env, "readChecked: out of memory");
  }
  memcpy(r->crcs, crcs, crc_count * sizeof(uint32_t));
  r->fd = fd;
  r->data = data;
  r->length = length;
  r->position = position;
  r->block_bytes = block_bytes;
  r->crc_count = crc_count;
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_reference(env, argv[1], 1, &r->buffer);
  napi_create_string_utf8(env, "cairn.readChecked", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, checked_read_run, checked_read_done, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

NAPI_MODULE_INIT() {
  crc_init();
  napi_value fn;
  napi_create_function(env, "readCached", NAPI_AUTO_LENGTH, read_cached, NULL, &fn);
  napi_set_named_property(env, exports, "readCached", fn);
  napi_create_function(env, "dropCached", NAPI_AUTO_LENGTH, drop_cached, NULL, &fn);
  napi_set_named_property(env, exports, "dropCached", fn);
  napi_create_function(env, "addressOffset", NAPI_AUTO_LENGTH, address_offset, NULL, &fn);
  napi_set_named_property(env, exports, "addressOffset", fn);
  napi_create_function(env, "readChecked", NAPI_AUTO_LENGTH, read_checked, NULL, &fn);
  napi_set_named_property(env, exports, "readChecked", fn);
  return exports;
}
