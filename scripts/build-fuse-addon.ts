// Builds fuse-native's addon from its C source with cairn's changes (docs/fuse.md, "Who an operation
// acts as"). Every FUSE operation also hands JavaScript the uid, gid, pid and umask of the process
// that asked (libfuse's fuse_get_context): fuse-native's prebuilt addon leaves them out, and without
// them a mount cannot give a new file its creator as owner, nor let the masters check permissions
// as that user. utimens passes mtime (it passed atime twice); create passes O_EXCL; a create and a
// held directory's getattr are answered in C; and it is built on libfuse 3 (1 MiB requests) instead
// of libfuse 2 (libfuse3Edits); a lookup of a name a held directory lacks (namesEdits) and a
// clean descriptor's release (releaseEdits) are answered in C, and so is a create in a held
// directory (createEdits). Run by `npm install` (postinstall)
// and by hand:
//   node scripts/build-fuse-addon.ts
// It needs a C compiler (Debian gcc), libfuse 3's headers (Debian libfuse3-dev) and libfuse3.so.3
// (Debian fuse3 brings it); Node brings the N-API headers. Without them it says so and leaves the
// prebuilt addon (libfuse 2), which mounts still use (new files then belong to the mount's user).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { missingForAddon, nodeHeadersDir, skipBuild } from './native-build.ts';

const require = createRequire(import.meta.url);
const say = (m: string): void => console.error(`build-fuse-addon: ${m}`);

let fuseDir: string;
try {
  fuseDir = path.dirname(require.resolve('fuse-native/package.json'));
} catch {
  say('fuse-native is not installed (an optional dependency): nothing to build');
  process.exit(0);
}
const out = path.join(fuseDir, 'build', 'Release', 'fuse.node');

/** Each edit: the exact text of fuse-native.c 2.2.6 it replaces, so that another version fails loudly. */
const edits: [string, string][] = [
  // The caller, kept with the operation's other arguments in the thread's locals.
  [
    '  // Internal bookkeeping\n',
    '  // The process that asked (cairn)\n  uid_t caller_uid;\n  gid_t caller_gid;\n  pid_t caller_pid;\n  mode_t caller_umask;\n\n  // Internal bookkeeping\n',
  ],
  // Read in the FUSE thread, where the context is valid, before JavaScript is woken; there too an
  // operation that may change a directory moves the mount's generation as it begins (cairn_changes)...
  [
    '  l->op_fn = fuse_native_dispatch_##name;\\\n',
    '  l->op_fn = fuse_native_dispatch_##name;\\\n  { struct fuse_context *caller = fuse_get_context(); l->caller_uid = caller->uid; l->caller_gid = caller->gid; l->caller_pid = caller->pid; l->caller_umask = caller->umask; }\\\n  if (cairn_changes(op_##name)) __atomic_add_fetch(&l->fuse->cairn_gen, 1, __ATOMIC_SEQ_CST);\\\n  l->cairn_op_gen = __atomic_load_n(&l->fuse->cairn_gen, __ATOMIC_SEQ_CST);\\\n  l->cairn_ended = 0;\\\n',
  ],
  // ...and again as it ends (before the kernel hears the answer): what was kept while it ran (a
  // getattr answered before JavaScript got to it) is void too. A create ends it itself (cairn_create_ended).
  [
    '    signalBlk\\\n    l->res = res;\\\n',
    '    signalBlk\\\n    if (cairn_changes(op_##name) && !l->cairn_ended) __atomic_add_fetch(&l->fuse->cairn_gen, 1, __ATOMIC_SEQ_CST);\\\n    l->res = res;\\\n',
  ],
  // Passed after the operation's own arguments, where fuse-native's JavaScript ignores them.
  ['      napi_value argv[callbackArgs + 2];\\\n', '      napi_value argv[callbackArgs + 6];\\\n'],
  [
    '      callbackBlk\\\n      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 2, argv, NULL)\\\n',
    '      callbackBlk\\\n      napi_create_uint32(env, l->caller_uid, &(argv[callbackArgs + 2]));\\\n      napi_create_uint32(env, l->caller_gid, &(argv[callbackArgs + 3]));\\\n      napi_create_uint32(env, l->caller_pid, &(argv[callbackArgs + 4]));\\\n      napi_create_uint32(env, l->caller_umask, &(argv[callbackArgs + 5]));\\\n      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 6, argv, NULL)\\\n',
  ],
  // utimens passed atime twice and mtime never.
  ['  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)\n', '  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)\n'],
  // Without flag_utime_omit_ok libfuse 2 drops a change of one time only (futimens with UTIME_OMIT,
  // as tar and cp -p do): it is passed on, UTIME_OMIT and UTIME_NOW as values no real time has
  // (2^63 ms and 2^63 + 2^32 ms: exact as JavaScript numbers).
  ['  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;\n', '  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;\n  ops.flag_utime_omit_ok = 1;\n'],
  [
    '  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);\n',
    '  l->atime = cairn_utime(&tv[0]);\n  l->mtime = cairn_utime(&tv[1]);\n',
  ],
  [
    'static void populate_stat (uint32_t *ints, struct stat* stat) {\n',
    'static uint64_t cairn_utime (const struct timespec* ts) {\n  if (ts->tv_nsec == UTIME_OMIT) return (uint64_t)1 << 63;\n  if (ts->tv_nsec == UTIME_NOW) return ((uint64_t)1 << 63) | ((uint64_t)1 << 32);\n  return timespec_to_uint64(ts);\n}\n\nstatic void populate_stat (uint32_t *ints, struct stat* stat) {\n',
  ],
  // create passes O_EXCL as bit 31 of the mode (no mode has it): libfuse 2 gives the flags only in
  // the file info, which fuse-native does not hand on, and without them a create is exclusive
  // always or never (never: two mounts both made the same lock file with O_EXCL).
  [
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n',
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, (uint32_t)l->mode | ((l->info->flags & O_EXCL) ? 0x80000000u : 0), &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n',
  ],
  // Times before 1970 are negative milliseconds (two's complement in the two 32-bit halves, which
  // the JavaScript side writes so): read as unsigned they were thousands of years ahead.
  [
    'static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {\n  uint64_t ms = uint32s_to_uint64(ints);\n  ts->tv_sec = ms / 1000;\n  ts->tv_nsec = (ms % 1000) * 1000000;\n}\n',
    'static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {\n  int64_t ms = (int64_t)uint32s_to_uint64(ints);\n  int64_t rem = ms % 1000;\n  if (rem < 0) rem += 1000;\n  ts->tv_sec = (ms - rem) / 1000;\n  ts->tv_nsec = rem * 1000000;\n}\n',
  ],
  // A create answers without two of the trips to JavaScript that follow it on every create: the
  // attributes libfuse asks for at once (fgetattr, on the same thread) come with the create's answer,
  // and the flush at close(2) of a file created lazily and not written since does nothing
  // (CairnFs.flush), so it is answered here. A handle is clean from its create until JavaScript says
  // otherwise (cairn_unclean, before anything it does could make a flush do something) or it is
  // released; a slot taken by another handle leaves it to JavaScript, which is always right.
  [
    '  // Stat + Statfs\n  struct stat *stat;\n',
    '  // Stat + Statfs\n  struct stat *stat;\n\n  // A create\'s attributes for the fgetattr right after it on this thread (cairn)\n  struct stat created_stat;\n  uint64_t created_fh;\n  int created_ready;\n  // The mount\'s change generation when this operation started (cairn, CAIRN_DIR_SLOTS), and\n  // whether its end has moved it already\n  uint64_t cairn_op_gen;\n  int cairn_ended;\n',
  ],
  ['  uv_mutex_t mut;\n  uv_sem_t sem;\n} fuse_thread_t;\n', '  uv_mutex_t mut;\n  uv_sem_t sem;\n\n  // Handles whose flush does nothing (cairn): slot fh % CAIRN_CLEAN_SLOTS holds fh, or 0\n  uint64_t cairn_clean[CAIRN_CLEAN_SLOTS];\n  // Held directories\' attributes (cairn): see cairn_dir_find\n  uint64_t cairn_gen;\n  uv_mutex_t cairn_dirs_mut;\n  cairn_dir_slot cairn_dirs[CAIRN_DIR_SLOTS];\n} fuse_thread_t;\n'],
  [
    '// Data structures\n',
    '// Data structures\n\n#define CAIRN_CLEAN_SLOTS 4096\n#define CAIRN_DIR_SLOTS 16\n#define CAIRN_DIR_PATH_MAX 256\n\ntypedef struct {\n  char path[CAIRN_DIR_PATH_MAX];\n  struct stat stat;\n  uint64_t gen;\n  uint64_t expires_ns;\n} cairn_dir_slot;\n',
  ],
  ['  uv_mutex_init(&(ft->mut));\n', '  uv_mutex_init(&(ft->mut));\n  uv_mutex_init(&(ft->cairn_dirs_mut));\n'],
  [
    '// Methods\n',
    `// Methods

static int cairn_is_clean (fuse_thread_t *ft, uint64_t fh) {
  return __atomic_load_n(&ft->cairn_clean[fh % CAIRN_CLEAN_SLOTS], __ATOMIC_SEQ_CST) == fh;
}

static void cairn_set_unclean (fuse_thread_t *ft, uint64_t fh) {
  uint64_t expected = fh;
  __atomic_compare_exchange_n(&ft->cairn_clean[fh % CAIRN_CLEAN_SLOTS], &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

// A create's answer: the new file's attributes (a Uint32Array as getattr's) and whether its handle is clean.
static void cairn_created (fuse_thread_locals_t *l, napi_env env, napi_value stat, napi_value clean, uint64_t fh) {
  bool typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, stat, &typed) == napi_ok && typed && napi_get_typedarray_info(env, stat, &type, &length, &data, NULL, NULL) == napi_ok && type == napi_uint32_array && length >= 18) {
    memset(&l->created_stat, 0, sizeof(struct stat));
    populate_stat((uint32_t *) data, &l->created_stat);
    l->created_fh = fh;
    l->created_ready = 1;
  }
  bool is_clean = false;
  napi_get_value_bool(env, clean, &is_clean); // anything but true: not clean
  uint64_t expected = 0;
  if (is_clean) __atomic_compare_exchange_n(&l->fuse->cairn_clean[fh % CAIRN_CLEAN_SLOTS], &expected, fh, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

// Whether an operation may change a directory's attributes: each such one moves the mount's
// generation as it begins and as it ends, which voids every directory attribute kept before. A
// write changes only its file; flush and release only the file they end.
static int cairn_changes (uint32_t op) {
  switch (op) {
    case op_getattr: case op_fgetattr: case op_access: case op_statfs: case op_open: case op_opendir:
    case op_read: case op_readdir: case op_readlink: case op_getxattr: case op_listxattr:
    case op_write: case op_flush: case op_release: case op_releasedir:
      return 0;
    default:
      return 1;
  }
}

static uint64_t cairn_now_ns () {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static cairn_dir_slot *cairn_dir_slot_of (fuse_thread_t *ft, const char *path, size_t len) {
  uint32_t h = 2166136261u; // FNV-1a
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t) path[i]) * 16777619u;
  return &ft->cairn_dirs[h % CAIRN_DIR_SLOTS];
}

// A held directory's attributes as JavaScript last answered them, if no operation that may change
// a directory has begun or ended since (the generation is the one the answer was given at) and they are
// younger than the attribute timeout the answer came with: then they are what JavaScript would
// answer now, but for a change its own timers made (a batch landing, a hold ending), which the
// kernel's attribute cache may show for as long anyway.
static int cairn_dir_find (fuse_thread_t *ft, const char *path, uint64_t gen, struct stat *out) {
  size_t len = strlen(path);
  if (len >= CAIRN_DIR_PATH_MAX) return 0;
  int found = 0;
  uv_mutex_lock(&ft->cairn_dirs_mut);
  cairn_dir_slot *slot = cairn_dir_slot_of(ft, path, len);
  if (slot->gen == gen && slot->expires_ns > cairn_now_ns() && strcmp(slot->path, path) == 0) {
    *out = slot->stat;
    found = 1;
  }
  uv_mutex_unlock(&ft->cairn_dirs_mut);
  return found;
}

// Keeps a directory's attributes (a Uint32Array as getattr's) for ttl ms, valid at generation gen.
static void cairn_dir_keep (napi_env env, fuse_thread_t *ft, const char *path, size_t len, napi_value stat, napi_value ttl, uint64_t gen) {
  uint32_t ttl_ms = 0;
  if (napi_get_value_uint32(env, ttl, &ttl_ms) != napi_ok || ttl_ms == 0 || len >= CAIRN_DIR_PATH_MAX) return;
  bool typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, stat, &typed) != napi_ok || !typed || napi_get_typedarray_info(env, stat, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint32_array || length < 18) return;
  struct stat st;
  memset(&st, 0, sizeof(struct stat));
  populate_stat((uint32_t *) data, &st);
  uv_mutex_lock(&ft->cairn_dirs_mut);
  cairn_dir_slot *slot = cairn_dir_slot_of(ft, path, len);
  memcpy(slot->path, path, len);
  slot->path[len] = 0;
  slot->stat = st;
  slot->gen = gen;
  slot->expires_ns = cairn_now_ns() + (uint64_t) ttl_ms * 1000000u;
  uv_mutex_unlock(&ft->cairn_dirs_mut);
}

// A create's or an unlink's end: the generation moves on, and if no other operation that may change
// a directory began or ended since it began, the directory's attributes after it (JavaScript's
// answer, given now) are kept at the new generation.
// An operation that may change a directory ends: the generation moves on; 1 if no other such
// operation began or ended since it began (the generation is then its own start's plus one).
static int cairn_ended_alone (fuse_thread_locals_t *l) {
  uint64_t expected = l->cairn_op_gen;
  l->cairn_ended = 1;
  if (__atomic_compare_exchange_n(&l->fuse->cairn_gen, &expected, expected + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 1;
  __atomic_add_fetch(&l->fuse->cairn_gen, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static void cairn_create_ended (napi_env env, fuse_thread_locals_t *l, int32_t res, napi_value stat, napi_value ttl) {
  if (!cairn_ended_alone(l)) return;
  const char *slash = strrchr(l->path, '/');
  if (res == 0 && slash != NULL) cairn_dir_keep(env, l->fuse, l->path, slash == l->path ? 1 : (size_t) (slash - l->path), stat, ttl, l->cairn_op_gen + 1);
}

NAPI_METHOD(cairn_unclean) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UINT32(fh, 1);
  cairn_set_unclean(ft, fh);
  return NULL;
}
`,
  ],
  ['FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n', 'FUSE_METHOD(create, 2, 5, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->created_ready = 0;\n'],
  [
    '0x80000000u : 0), &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n',
    '0x80000000u : 0), &(argv[3]));\n}, {\n  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n  if (res == 0 && fd > 0) cairn_created(l, env, argv[3], argv[4], (uint64_t) fd);\n  cairn_create_ended(env, l, res, argv[5], argv[6]);\n',
  ],
  [
    'FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {\n  l->path = path;\n  l->stat = stat;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n}, {\n  NAPI_ARGV_BUFFER_CAST(uint32_t*, ints, 2)\n  populate_stat(ints, l->stat);\n})\n',
    'FUSE_METHOD(getattr, 1, 2, (const char *path, struct stat *stat), {\n  if (cairn_dir_find(l->fuse, path, l->cairn_op_gen, stat)) return 0;\n  l->path = path;\n  l->stat = stat;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n}, {\n  NAPI_ARGV_BUFFER_CAST(uint32_t*, ints, 2)\n  populate_stat(ints, l->stat);\n  if (res == 0) cairn_dir_keep(env, l->fuse, l->path, strlen(l->path), argv[2], argv[3], l->cairn_op_gen);\n})\n',
  ],
  [
    'FUSE_METHOD(fgetattr, 2, 1, (const char *path, struct stat *stat, struct fuse_file_info *info), {\n',
    'FUSE_METHOD(fgetattr, 2, 1, (const char *path, struct stat *stat, struct fuse_file_info *info), {\n  if (l->created_ready && info != NULL && info->fh == l->created_fh) {\n    l->created_ready = 0;\n    *stat = l->created_stat;\n    return 0;\n  }\n',
  ],
  ['FUSE_METHOD_VOID(flush, 2, 0, (const char *path, struct fuse_file_info *info), {\n', 'FUSE_METHOD_VOID(flush, 2, 0, (const char *path, struct fuse_file_info *info), {\n  if (info != NULL && cairn_is_clean(l->fuse, info->fh)) return 0;\n'],
  ['FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {\n', 'FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {\n  if (info != NULL) cairn_set_unclean(l->fuse, info->fh);\n'],
  ['  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n', '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(cairn_unclean)\n'],
  // Only user.* extended attributes are kept (docs/fuse.md): the others are refused here, on the
  // libfuse thread. `ls -l` asks for two of them of every file (security.selinux and
  // system.posix_acl_access), and stops asking on a device that answers EOPNOTSUPP.
  ...(['getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size)', 'setxattr, 5, 1, (const char *path, const char *name, const char *value, size_t size, int flags)', 'removexattr, 2, 0, (const char *path, const char *name)'].map((m): [string, string] => {
    const head = `FUSE_METHOD${m.startsWith('removexattr') ? '_VOID' : ''}(${m}, {\n`;
    return [head, `${head}  if (strncmp(name, "user.", 5) != 0) return -EOPNOTSUPP;\n`];
  })),
  // So that JavaScript can tell this addon from the prebuilt one.
  ['  NAPI_EXPORT_UINT32(op_error)\n', '  NAPI_EXPORT_UINT32(op_error)\n  NAPI_EXPORT_UINT32(cairn_caller_context)\n'],
  // 2: utimens fixed as well; 3: and passes UTIME_OMIT and UTIME_NOW; 4: and create's O_EXCL;
  // 5: and times before 1970; 6: and a create answers its fgetattr and its clean flush; 7: and a
  // held directory's getattr; 8: and it speaks libfuse 3 (libfuse3Edits); 9: and refuses xattrs
  // other than user.* itself; 10: and answers a lookup of a name a held directory lacks (namesEdits);
  // 11: and a clean descriptor's release (releaseEdits); 12: and rename's RENAME_NOREPLACE; 13: and
  // a create in a held directory (createEdits).
  ['static const uint32_t op_init = 0;\n', 'static const uint32_t cairn_caller_context = 12;\nstatic const uint32_t op_init = 0;\n'],
];

/**
 * The release of a clean descriptor (a file created lazily and not written since: CairnFs.isClean)
 * answered in C too: the descriptor goes into a queue that JavaScript empties (cairn_released) and
 * releases then, as the kernel's own release is asynchronous anyway. One trip to the event loop
 * less a create. A full queue leaves the release to JavaScript.
 */
const releaseEdits: [string, string][] = [
  ['#define CAIRN_CLEAN_SLOTS 4096\n', '#define CAIRN_CLEAN_SLOTS 4096\n#define CAIRN_RELEASED_MAX 4096\n'],
  [
    '  cairn_dir_slot cairn_dirs[CAIRN_DIR_SLOTS];\n',
    '  cairn_dir_slot cairn_dirs[CAIRN_DIR_SLOTS];\n  // Clean descriptors released here, for JavaScript to release (cairn)\n  uv_mutex_t cairn_released_mut;\n  uint32_t cairn_released_count;\n  uint64_t cairn_released[CAIRN_RELEASED_MAX];\n',
  ],
  ['  uv_mutex_init(&(ft->cairn_dirs_mut));\n', '  uv_mutex_init(&(ft->cairn_dirs_mut));\n  uv_mutex_init(&(ft->cairn_released_mut));\n'],
  [
    '\nNAPI_METHOD(cairn_unclean) {\n',
    `
// A clean descriptor's release, taken here: its slot is emptied (a JavaScript cairn_unclean at the
// same time finds it gone: the release is JavaScript's either way) and it is queued for JavaScript;
// 0 if it is not clean or the queue is full (then JavaScript is asked now).
static int cairn_release_clean (fuse_thread_t *ft, uint64_t fh) {
  uint64_t expected = fh;
  if (!__atomic_compare_exchange_n(&ft->cairn_clean[fh % CAIRN_CLEAN_SLOTS], &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
  uv_mutex_lock(&ft->cairn_released_mut);
  int queued = ft->cairn_released_count < CAIRN_RELEASED_MAX;
  if (queued) ft->cairn_released[ft->cairn_released_count++] = fh;
  uv_mutex_unlock(&ft->cairn_released_mut);
  return queued;
}

// cairn_released(thread): the descriptors released here since the last call (an array), emptying the queue.
NAPI_METHOD(cairn_released) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  uint64_t fds[CAIRN_RELEASED_MAX];
  uv_mutex_lock(&ft->cairn_released_mut);
  uint32_t n = ft->cairn_released_count;
  memcpy(fds, ft->cairn_released, n * sizeof(uint64_t));
  ft->cairn_released_count = 0;
  uv_mutex_unlock(&ft->cairn_released_mut);
  napi_value out;
  NAPI_STATUS_THROWS(napi_create_array_with_length(env, n, &out));
  for (uint32_t i = 0; i < n; i++) {
    napi_value fd;
    NAPI_STATUS_THROWS(napi_create_double(env, (double) fds[i], &fd));
    NAPI_STATUS_THROWS(napi_set_element(env, out, i, fd));
  }
  return out;
}

NAPI_METHOD(cairn_unclean) {
`,
  ],
  [
    'FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {\n  if (info != NULL) cairn_set_unclean(l->fuse, info->fh);\n',
    'FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {\n  if (info != NULL && cairn_release_clean(l->fuse, info->fh)) return 0;\n  if (info != NULL) cairn_set_unclean(l->fuse, info->fh);\n',
  ],
  ['  NAPI_EXPORT_FUNCTION(cairn_unclean)\n', '  NAPI_EXPORT_FUNCTION(cairn_unclean)\n  NAPI_EXPORT_FUNCTION(cairn_released)\n'],
];

/**
 * A held directory's names (src/fuse/dir-holds.ts), as 64-bit hashes mirrored from JavaScript, which
 * updates them in the same step as its own listing: a lookup of a name the directory lacks (each
 * create's, before it) is answered ENOENT here, on the libfuse thread, instead of a trip to the
 * event loop inside the kernel's lock of the directory. A hash shared by two names only sends the
 * lookup to JavaScript, which is always right; so does a directory not mirrored, and any lookup
 * once the time JavaScript last gave has passed (its leases' renewal, DirHolds.usable).
 */
const namesEdits: [string, string][] = [
  [
    '} cairn_dir_slot;\n',
    `} cairn_dir_slot;

#define CAIRN_NAME_DIRS 16

// A name of a held directory, by its 64-bit hash (odd: 0 is an empty slot)
typedef struct {
  uint64_t hash;
  // Names of this hash: more than one is a collision, never answered from
  uint32_t refs;
  // Whether ints hold the name's attributes (a plain file no descriptor of the mount has open)
  uint32_t known;
  // The name, or NULL once it is not sure which name of this hash is left
  char *name;
  uint32_t ints[18];
} cairn_name_entry;

// One held directory's names: open addressing, linear probing
typedef struct {
  char path[CAIRN_DIR_PATH_MAX];
  cairn_name_entry *entries;
  uint32_t cap;
  uint32_t count;
} cairn_names_dir;
`,
  ],
  [
    '  cairn_dir_slot cairn_dirs[CAIRN_DIR_SLOTS];\n} fuse_thread_t;\n',
    '  cairn_dir_slot cairn_dirs[CAIRN_DIR_SLOTS];\n  // Held directories\' names (cairn): see cairn_absent\n  uv_mutex_t cairn_names_mut;\n  uint64_t cairn_names_until_ns;\n  cairn_names_dir cairn_names[CAIRN_NAME_DIRS];\n} fuse_thread_t;\n',
  ],
  ['  uv_mutex_init(&(ft->cairn_dirs_mut));\n', '  uv_mutex_init(&(ft->cairn_dirs_mut));\n  uv_mutex_init(&(ft->cairn_names_mut));\n'],
  [
    '\nNAPI_METHOD(cairn_unclean) {\n',
    `
static uint64_t cairn_name_hash (const char *name, size_t len) {
  uint64_t h = 14695981039346656037ull; // FNV-1a
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t) name[i]) * 1099511628211ull;
  return h | 1;
}

static cairn_names_dir *cairn_names_of (fuse_thread_t *ft, const char *dir, size_t len) {
  for (int i = 0; i < CAIRN_NAME_DIRS; i++) {
    cairn_names_dir *d = &ft->cairn_names[i];
    if (d->entries != NULL && strncmp(d->path, dir, len) == 0 && d->path[len] == 0) return d;
  }
  return NULL;
}

static cairn_name_entry *cairn_names_find (const cairn_names_dir *d, uint64_t h) {
  uint32_t mask = d->cap - 1;
  for (uint32_t i = (uint32_t) h & mask; d->entries[i].hash != 0; i = (i + 1) & mask) if (d->entries[i].hash == h) return &d->entries[i];
  return NULL;
}

static int cairn_names_has (const cairn_names_dir *d, uint64_t h) {
  return cairn_names_find(d, h) != NULL;
}

static void cairn_names_drop_dir (cairn_names_dir *d) {
  if (d->entries != NULL) for (uint32_t i = 0; i < d->cap; i++) free(d->entries[i].name);
  free(d->entries);
  memset(d, 0, sizeof(cairn_names_dir));
}

static int cairn_name_is (const cairn_name_entry *e, const char *name, size_t len) {
  return e->name != NULL && strlen(e->name) == len && memcmp(e->name, name, len) == 0;
}

// Adds a name (h its hash), growing the table to keep it at most half full; its entry, or NULL when
// out of memory (then the directory is forgotten: its lookups go to JavaScript). Another name of the
// same hash makes the entry a collision's: present for as long as any of them may be, never answered from.
static cairn_name_entry *cairn_names_put (cairn_names_dir *d, uint64_t h, const char *name, size_t len) {
  cairn_name_entry *e = cairn_names_find(d, h);
  if (e != NULL) {
    if (cairn_name_is(e, name, len)) return e;
    e->refs++;
    e->known = 0;
    free(e->name);
    e->name = NULL;
    return e;
  }
  if ((d->count + 1) * 2 > d->cap) {
    uint32_t cap = d->cap * 2;
    cairn_name_entry *entries = calloc(cap, sizeof(cairn_name_entry));
    if (entries == NULL) {
      cairn_names_drop_dir(d);
      return NULL;
    }
    for (uint32_t i = 0; i < d->cap; i++) {
      if (d->entries[i].hash == 0) continue;
      uint32_t j = (uint32_t) d->entries[i].hash & (cap - 1);
      while (entries[j].hash != 0) j = (j + 1) & (cap - 1);
      entries[j] = d->entries[i];
    }
    free(d->entries);
    d->entries = entries;
    d->cap = cap;
  }
  uint32_t mask = d->cap - 1, i = (uint32_t) h & mask;
  while (d->entries[i].hash != 0) i = (i + 1) & mask;
  e = &d->entries[i];
  memset(e, 0, sizeof(cairn_name_entry));
  e->hash = h;
  e->refs = 1;
  e->name = malloc(len + 1);
  if (e->name != NULL) {
    memcpy(e->name, name, len);
    e->name[len] = 0;
  }
  d->count++;
  return e;
}

// Removes a name. A name the entry of its hash is not (it was not there) changes nothing; a
// collision's entry only counts one name fewer, and stays (it is not sure which name is left).
// When the entry goes, the entries after it in its run move back, so that no probe stops short.
static void cairn_names_remove (cairn_names_dir *d, uint64_t h, const char *name, size_t len) {
  uint32_t mask = d->cap - 1, i = (uint32_t) h & mask;
  while (d->entries[i].hash != h) {
    if (d->entries[i].hash == 0) return;
    i = (i + 1) & mask;
  }
  cairn_name_entry *e = &d->entries[i];
  if (e->name == NULL) {
    if (e->refs > 1) e->refs--;
    return;
  }
  if (!cairn_name_is(e, name, len)) return;
  free(e->name);
  for (uint32_t j = (i + 1) & mask; d->entries[j].hash != 0; j = (j + 1) & mask) {
    uint32_t home = (uint32_t) d->entries[j].hash & mask;
    // The entry at j stays if its home lies cyclically in (i, j]
    if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
    d->entries[i] = d->entries[j];
    i = j;
  }
  memset(&d->entries[i], 0, sizeof(cairn_name_entry));
  d->count--;
}

// A name's attributes: a getattr's Uint32Array (its mode 0: not known); anything else, not known.
static void cairn_name_attrs (napi_env env, cairn_name_entry *e, napi_value ints, size_t at) {
  if (e == NULL) return;
  bool typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  e->known = 0;
  if (e->refs != 1 || e->name == NULL) return;
  if (napi_is_typedarray(env, ints, &typed) != napi_ok || !typed || napi_get_typedarray_info(env, ints, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint32_array || length < at + 18) return;
  memcpy(e->ints, (uint32_t *) data + at, sizeof(e->ints));
  e->known = e->ints[0] != 0;
}

// path's last slash, and the lengths of its directory and name, if the addon may answer for such a
// name (else NULL: JavaScript answers).
static const char *cairn_split (const char *path, size_t *dir_len, size_t *name_len) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash[1] == 0) return NULL;
  *dir_len = slash == path ? 1 : (size_t) (slash - path);
  *name_len = strlen(slash + 1);
  if (*dir_len >= CAIRN_DIR_PATH_MAX || *name_len > 255) return NULL; // a name too long: the masters' ENAMETOOLONG
  // Beyond ASCII, JavaScript may see other bytes than these (invalid UTF-8 becomes U+FFFD)
  for (size_t i = 0; i < *name_len; i++) if ((uint8_t) slash[1 + i] >= 0x80) return NULL;
  return slash;
}

// Whether JavaScript would answer ENOENT for path now: its directory is held, mirrored here, within
// the time last given, and has no name of this hash.
static int cairn_absent (fuse_thread_t *ft, const char *path) {
  size_t dir_len, name_len;
  const char *slash = cairn_split(path, &dir_len, &name_len);
  if (slash == NULL) return 0;
  uint64_t h = cairn_name_hash(slash + 1, name_len);
  int absent = 0;
  uv_mutex_lock(&ft->cairn_names_mut);
  if (cairn_now_ns() < ft->cairn_names_until_ns) {
    cairn_names_dir *d = cairn_names_of(ft, path, dir_len);
    absent = d != NULL && !cairn_names_has(d, h);
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  return absent;
}

// cairn_names_hold(thread, dir, names, attrs): dir's names are these (a Buffer of names joined by
// '/'), with their attributes (attrs: a Uint32Array of 18 for each, as getattr's; a mode of 0: not
// known), replacing what was kept; without a free place, dir is not kept.
NAPI_METHOD(cairn_names_hold) {
  NAPI_ARGV(4)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UTF8(dir, CAIRN_DIR_PATH_MAX, 1);
  NAPI_ARGV_BUFFER(names, 2);
  if (dir_len >= CAIRN_DIR_PATH_MAX - 1) return NULL;
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_names_of(ft, dir, dir_len);
  if (d != NULL) cairn_names_drop_dir(d);
  for (int i = 0; d == NULL && i < CAIRN_NAME_DIRS; i++) if (ft->cairn_names[i].entries == NULL) d = &ft->cairn_names[i];
  if (d != NULL && (d->entries = calloc(16, sizeof(cairn_name_entry))) != NULL) {
    d->cap = 16;
    memcpy(d->path, dir, dir_len + 1);
    size_t start = 0, n = 0;
    for (size_t i = 0; i <= names_len && d->entries != NULL; i++) {
      if (i < names_len && names[i] != '/') continue;
      if (i > start) cairn_name_attrs(env, cairn_names_put(d, cairn_name_hash(names + start, i - start), names + start, i - start), argv[3], 18 * n++);
      start = i + 1;
    }
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_names_change(thread, dir, name, present, attrs): a name of a kept directory comes (with its
// attributes, as cairn_names_hold's, if known) or goes.
NAPI_METHOD(cairn_names_change) {
  NAPI_ARGV(5)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UTF8(dir, CAIRN_DIR_PATH_MAX, 1);
  NAPI_ARGV_UTF8(name, 1024, 2);
  bool present = true;
  napi_get_value_bool(env, argv[3], &present);
  uint64_t h = cairn_name_hash(name, name_len);
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_names_of(ft, dir, dir_len);
  if (d != NULL) {
    if (present) cairn_name_attrs(env, cairn_names_put(d, h, name, name_len), argv[4], 0);
    else cairn_names_remove(d, h, name, name_len);
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_names_drop(thread, dir): dir is no longer kept.
NAPI_METHOD(cairn_names_drop) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UTF8(dir, CAIRN_DIR_PATH_MAX, 1);
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_names_of(ft, dir, dir_len);
  if (d != NULL) cairn_names_drop_dir(d);
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_names_until(thread, ms): the kept names are answered from for ms more at most.
NAPI_METHOD(cairn_names_until) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_INT32(ms, 1);
  uint64_t until = ms > 0 ? cairn_now_ns() + (uint64_t) ms * 1000000u : 0;
  uv_mutex_lock(&ft->cairn_names_mut);
  ft->cairn_names_until_ns = until;
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_names_absent(thread, path): cairn_absent's answer (for the tests).
NAPI_METHOD(cairn_names_absent) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UTF8(path, 2048, 1);
  NAPI_RETURN_UINT32(cairn_absent(ft, path));
}

NAPI_METHOD(cairn_unclean) {
`,
  ],
  ['  if (cairn_dir_find(l->fuse, path, l->cairn_op_gen, stat)) return 0;\n', '  if (cairn_absent(l->fuse, path)) return -ENOENT;\n  if (cairn_dir_find(l->fuse, path, l->cairn_op_gen, stat)) return 0;\n'],
  // An unlink's answer may carry its directory's attributes after it, kept as a create's are
  // (cairn_create_ended): the kernel asks for them right after, still holding the directory's lock.
  [
    'FUSE_METHOD_VOID(unlink, 1, 0, (const char *path), {\n  l->path = path;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n})\n',
    'FUSE_METHOD(unlink, 1, 2, (const char *path), {\n  l->path = path;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n}, {\n  cairn_create_ended(env, l, res, argv[2], argv[3]);\n})\n',
  ],
  [
    '  NAPI_EXPORT_FUNCTION(cairn_unclean)\n',
    '  NAPI_EXPORT_FUNCTION(cairn_unclean)\n  NAPI_EXPORT_FUNCTION(cairn_names_hold)\n  NAPI_EXPORT_FUNCTION(cairn_names_change)\n  NAPI_EXPORT_FUNCTION(cairn_names_drop)\n  NAPI_EXPORT_FUNCTION(cairn_names_until)\n  NAPI_EXPORT_FUNCTION(cairn_names_absent)\n',
  ],
];

/**
 * A create in a held directory answered in C (version 13): when JavaScript has given the directory
 * inode ids (cairn_created_ids) and the mount descriptors (cairn_created_fds), a create of a name the
 * directory lacks takes the next of each, puts the name in the mirror, answers the kernel with the
 * new file's attributes, and queues the create for JavaScript (cairn_created_take), which enqueues it
 * into the directory's batch as its own create would have. Every operation that reaches JavaScript
 * takes the queue first (mount.ts), so none sees the mount without a create the kernel was told of.
 * Ids go to C in order and a create JavaScript answers itself there voids C's rest (the kernel
 * serializes creates in one directory, so none of C's runs meanwhile): the masters take a lease's
 * ids only in increasing order. Only the directory's owner or root creates here: the masters check
 * the batch's caller without its supplementary groups, which JavaScript reads from /proc later.
 */
const createEdits: [string, string][] = [
  ['#define CAIRN_NAME_DIRS 16\n', '#define CAIRN_NAME_DIRS 16\n#define CAIRN_CREATED_MAX 1024\n#define CAIRN_CREATED_PATH_MAX 520\n#define CAIRN_HELD_ENTRIES_MAX 32768\n'],
  [
    '  uint32_t cap;\n  uint32_t count;\n} cairn_names_dir;\n',
    '  uint32_t cap;\n  uint32_t count;\n  // Inode ids for creates here, [ino_next, ino_end), and who may create here (-1: nobody)\n  uint64_t ino_next;\n  uint64_t ino_end;\n  int64_t creator_uid;\n} cairn_names_dir;\n\n// A create answered here, for JavaScript\ntypedef struct {\n  char path[CAIRN_CREATED_PATH_MAX];\n  // 0: a create, 1: an unlink\n  uint32_t kind;\n  uint32_t mode;\n  uint32_t uid;\n  uint32_t gid;\n  uint32_t pid;\n  uint64_t ino;\n  uint64_t fh;\n  int64_t time_ms;\n} cairn_created_ev;\n',
  ],
  [
    '  cairn_names_dir cairn_names[CAIRN_NAME_DIRS];\n} fuse_thread_t;\n',
    '  cairn_names_dir cairn_names[CAIRN_NAME_DIRS];\n  // Creates answered here (cairn, under cairn_names_mut): descriptors to give, and the queue\n  uint64_t cairn_fd_next;\n  uint64_t cairn_fd_end;\n  uint32_t cairn_created_count;\n  cairn_created_ev cairn_created[CAIRN_CREATED_MAX];\n} fuse_thread_t;\n',
  ],
  [
    '\n// cairn_names_absent(thread, path): cairn_absent\'s answer (for the tests).\n',
    `
// Whether the caller may create and unlink in d here: its owner, or root (see createEdits).
static int cairn_may_change (const cairn_names_dir *d, const fuse_thread_locals_t *l) {
  return d->creator_uid >= 0 && (d->creator_uid == (int64_t) l->caller_uid || l->caller_uid == 0);
}

// The end of a create or unlink answered here, as cairn_create_ended: the directory's kept
// attributes, if nothing else changed a directory since they were kept, are them with its times.
static void cairn_changed_here (fuse_thread_locals_t *l, const char *path, size_t dir_len, struct timespec ms) {
  fuse_thread_t *ft = l->fuse;
  uint64_t gen = l->cairn_op_gen;
  if (!cairn_ended_alone(l)) return;
  uv_mutex_lock(&ft->cairn_dirs_mut);
  cairn_dir_slot *slot = cairn_dir_slot_of(ft, path, dir_len);
  if (slot->gen + 1 == gen && slot->expires_ns > cairn_now_ns() && strncmp(slot->path, path, dir_len) == 0 && slot->path[dir_len] == 0) {
    slot->stat.st_mtim = ms;
    slot->stat.st_ctim = ms;
    slot->gen = gen + 1;
  }
  uv_mutex_unlock(&ft->cairn_dirs_mut);
}

// A create of path answered here (see createEdits); 0: JavaScript answers it.
static int cairn_create_here (fuse_thread_locals_t *l, const char *path, mode_t mode, struct fuse_file_info *info) {
  fuse_thread_t *ft = l->fuse;
  if ((mode & S_IFMT) != S_IFREG || (mode & S_IWUSR) == 0 || info == NULL) return 0;
  size_t dir_len, name_len;
  const char *slash = cairn_split(path, &dir_len, &name_len);
  if (slash == NULL || dir_len + 1 + name_len >= CAIRN_CREATED_PATH_MAX) return 0;
  uint64_t h = cairn_name_hash(slash + 1, name_len);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
  uint64_t ino = 0, fh = 0;
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_now_ns() < ft->cairn_names_until_ns ? cairn_names_of(ft, path, dir_len) : NULL;
  if (d != NULL && cairn_may_change(d, l) && d->ino_next < d->ino_end && d->count < CAIRN_HELD_ENTRIES_MAX
      && ft->cairn_fd_next < ft->cairn_fd_end && ft->cairn_created_count < CAIRN_CREATED_MAX && !cairn_names_has(d, h)) {
    ino = d->ino_next++;
    fh = ft->cairn_fd_next++;
    cairn_names_put(d, h, slash + 1, name_len);
    cairn_created_ev *ev = &ft->cairn_created[ft->cairn_created_count++];
    memcpy(ev->path, path, dir_len + 1 + name_len + 1);
    ev->mode = mode & 07777;
    ev->uid = l->caller_uid;
    ev->gid = l->caller_gid;
    ev->pid = l->caller_pid;
    ev->kind = 0;
    ev->ino = ino;
    ev->fh = fh;
    ev->time_ms = now_ms;
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  if (ino == 0) return 0;
  // The attributes JavaScript gives such a file (CairnFs.toStat), for libfuse's getattr right after
  struct stat *st = &l->created_stat;
  memset(st, 0, sizeof(struct stat));
  st->st_mode = S_IFREG | (mode & 07777);
  st->st_uid = l->caller_uid;
  st->st_gid = l->caller_gid;
  st->st_nlink = 1;
  st->st_ino = (uint32_t) ino;
  st->st_blksize = 4096;
  struct timespec ms = { .tv_sec = now_ms / 1000, .tv_nsec = (now_ms % 1000) * 1000000 };
  st->st_atim = ms;
  st->st_mtim = ms;
  st->st_ctim = ms;
  l->created_fh = fh;
  l->created_ready = 1;
  info->fh = fh;
  uint64_t expected = 0;
  __atomic_compare_exchange_n(&ft->cairn_clean[fh % CAIRN_CLEAN_SLOTS], &expected, fh, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  cairn_changed_here(l, path, dir_len, ms);
  return 1;
}

// An unlink of path answered here (see createEdits): a plain file with one link that no descriptor
// of the mount has open, by its known attributes; 0: JavaScript answers it.
static int cairn_unlink_here (fuse_thread_locals_t *l, const char *path) {
  fuse_thread_t *ft = l->fuse;
  size_t dir_len, name_len;
  const char *slash = cairn_split(path, &dir_len, &name_len);
  if (slash == NULL || dir_len + 1 + name_len >= CAIRN_CREATED_PATH_MAX) return 0;
  uint64_t h = cairn_name_hash(slash + 1, name_len);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
  int done = 0;
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_now_ns() < ft->cairn_names_until_ns ? cairn_names_of(ft, path, dir_len) : NULL;
  cairn_name_entry *e = d != NULL && cairn_may_change(d, l) && ft->cairn_created_count < CAIRN_CREATED_MAX ? cairn_names_find(d, h) : NULL;
  if (e != NULL && e->known && e->refs == 1 && cairn_name_is(e, slash + 1, name_len) && (e->ints[0] & S_IFMT) == S_IFREG && e->ints[6] == 1) {
    cairn_names_remove(d, h, slash + 1, name_len);
    cairn_created_ev *ev = &ft->cairn_created[ft->cairn_created_count++];
    memset(ev, 0, sizeof(cairn_created_ev));
    memcpy(ev->path, path, dir_len + 1 + name_len + 1);
    ev->kind = 1;
    ev->uid = l->caller_uid;
    ev->gid = l->caller_gid;
    ev->pid = l->caller_pid;
    ev->time_ms = now_ms;
    done = 1;
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  if (!done) return 0;
  struct timespec ms = { .tv_sec = now_ms / 1000, .tv_nsec = (now_ms % 1000) * 1000000 };
  cairn_changed_here(l, path, dir_len, ms);
  return 1;
}

// A file's attributes in a held directory as JavaScript last gave them, if it would answer so now.
static int cairn_present (fuse_thread_t *ft, const char *path, struct stat *out) {
  size_t dir_len, name_len;
  const char *slash = cairn_split(path, &dir_len, &name_len);
  if (slash == NULL) return 0;
  uint64_t h = cairn_name_hash(slash + 1, name_len);
  uint32_t ints[18];
  int found = 0;
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_now_ns() < ft->cairn_names_until_ns ? cairn_names_of(ft, path, dir_len) : NULL;
  cairn_name_entry *e = d != NULL ? cairn_names_find(d, h) : NULL;
  if (e != NULL && e->known && e->refs == 1 && cairn_name_is(e, slash + 1, name_len)) {
    memcpy(ints, e->ints, sizeof(ints));
    found = 1;
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  if (found) {
    memset(out, 0, sizeof(struct stat));
    populate_stat(ints, out);
  }
  return found;
}

// cairn_created_take(thread): the creates and unlinks answered here since the last call, emptying
// the queue: an array of [path, mode, uid, gid, pid, ino, fd, timeMs, kind] for each (kind 1: an
// unlink, with only its path, caller and time).
NAPI_METHOD(cairn_created_take) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  static cairn_created_ev evs[CAIRN_CREATED_MAX]; // the event loop's thread only
  uv_mutex_lock(&ft->cairn_names_mut);
  uint32_t n = ft->cairn_created_count;
  memcpy(evs, ft->cairn_created, n * sizeof(cairn_created_ev));
  ft->cairn_created_count = 0;
  uv_mutex_unlock(&ft->cairn_names_mut);
  napi_value out;
  NAPI_STATUS_THROWS(napi_create_array_with_length(env, n, &out));
  for (uint32_t i = 0; i < n; i++) {
    napi_value ev, v;
    NAPI_STATUS_THROWS(napi_create_array_with_length(env, 9, &ev));
    NAPI_STATUS_THROWS(napi_create_string_utf8(env, evs[i].path, NAPI_AUTO_LENGTH, &v));
    NAPI_STATUS_THROWS(napi_set_element(env, ev, 0, v));
    uint32_t ints[4] = { evs[i].mode, evs[i].uid, evs[i].gid, evs[i].pid };
    for (uint32_t j = 0; j < 4; j++) {
      NAPI_STATUS_THROWS(napi_create_uint32(env, ints[j], &v));
      NAPI_STATUS_THROWS(napi_set_element(env, ev, 1 + j, v));
    }
    double wide[4] = { (double) evs[i].ino, (double) evs[i].fh, (double) evs[i].time_ms, (double) evs[i].kind };
    for (uint32_t j = 0; j < 4; j++) {
      NAPI_STATUS_THROWS(napi_create_double(env, wide[j], &v));
      NAPI_STATUS_THROWS(napi_set_element(env, ev, 5 + j, v));
    }
    NAPI_STATUS_THROWS(napi_set_element(env, out, i, ev));
  }
  return out;
}

// cairn_created_ids(thread, dir, first, end, creatorUid): creates in dir (mirrored) may take the ids
// [first, end), after what is left of those given before if first continues them; creatorUid (-1:
// nobody) and root may create there.
NAPI_METHOD(cairn_created_ids) {
  NAPI_ARGV(5)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UTF8(dir, CAIRN_DIR_PATH_MAX, 1);
  double first = 0, end = 0, uid = -1;
  napi_get_value_double(env, argv[2], &first);
  napi_get_value_double(env, argv[3], &end);
  napi_get_value_double(env, argv[4], &uid);
  uv_mutex_lock(&ft->cairn_names_mut);
  cairn_names_dir *d = cairn_names_of(ft, dir, dir_len);
  if (d != NULL) {
    if (d->ino_end != (uint64_t) first || d->ino_next >= d->ino_end) d->ino_next = (uint64_t) first;
    d->ino_end = (uint64_t) end;
    d->creator_uid = (int64_t) uid;
  }
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_created_fds(thread, first, end): creates here may give the descriptors [first, end).
NAPI_METHOD(cairn_created_fds) {
  NAPI_ARGV(3)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  double first = 0, end = 0;
  napi_get_value_double(env, argv[1], &first);
  napi_get_value_double(env, argv[2], &end);
  uv_mutex_lock(&ft->cairn_names_mut);
  ft->cairn_fd_next = (uint64_t) first;
  ft->cairn_fd_end = (uint64_t) end;
  uv_mutex_unlock(&ft->cairn_names_mut);
  return NULL;
}

// cairn_names_absent(thread, path): cairn_absent's answer (for the tests).
`,
  ],
  ['FUSE_METHOD(create, 2, 5, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->created_ready = 0;\n', 'FUSE_METHOD(create, 2, 5, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->created_ready = 0;\n  if (cairn_create_here(l, path, mode, info)) return 0;\n'],
  ['  if (cairn_dir_find(l->fuse, path, l->cairn_op_gen, stat)) return 0;\n', '  if (cairn_dir_find(l->fuse, path, l->cairn_op_gen, stat)) return 0;\n  if (cairn_present(l->fuse, path, stat)) return 0;\n'],
  ['FUSE_METHOD(unlink, 1, 2, (const char *path), {\n  l->path = path;\n', 'FUSE_METHOD(unlink, 1, 2, (const char *path), {\n  if (cairn_unlink_here(l, path)) return 0;\n  l->path = path;\n'],
  ['  NAPI_EXPORT_FUNCTION(cairn_names_absent)\n', '  NAPI_EXPORT_FUNCTION(cairn_names_absent)\n  NAPI_EXPORT_FUNCTION(cairn_created_take)\n  NAPI_EXPORT_FUNCTION(cairn_created_ids)\n  NAPI_EXPORT_FUNCTION(cairn_created_fds)\n'],
  ['static const uint32_t cairn_caller_context = 12;\n', 'static const uint32_t cairn_caller_context = 14;\n'],
];

/**
 * fuse-native speaks libfuse 2, whose kernel requests are at most 128 KiB (it cannot ask for
 * FUSE_MAX_PAGES): eight trips through the daemon for each MiB read or written. libfuse 3 asks for
 * 1 MiB. Its high-level API is libfuse 2's with a file handle passed to getattr, truncate, chmod,
 * chown and utimens (fgetattr and ftruncate are gone), flags on rename and readdir, and a new
 * mount/loop/unmount sequence; fuse-native's operations stay as they are, and small adapters
 * (cairn3_*) give libfuse 3 its signatures. The JavaScript side sees the same operations.
 */
const libfuse3Edits: [string, string][] = [
  ['#define FUSE_USE_VERSION 29\n', '#define FUSE_USE_VERSION 312\n#include <errno.h>\n#include <limits.h>\n'],
  ['  struct fuse *fuse;\n  struct fuse_chan *ch;\n', '  struct fuse *fuse;\n'],
  // readdir takes flags, and so does its filler (no FUSE_FILL_DIR_PLUS: the names, and a stat's type and inode number only).
  [
    'FUSE_METHOD(readdir, 1, 2, (const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *info), {\n',
    'FUSE_METHOD(readdir, 1, 2, (const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *info, enum fuse_readdir_flags readdir_flags), {\n',
  ],
  ['      int err = l->readdir_filler((char *) l->buf, name, NULL, 0);\n', '      int err = l->readdir_filler((char *) l->buf, name, NULL, 0, 0);\n'],
  ['      int err = l->readdir_filler((char *) l->buf, name, (struct stat *) &st, 0);\n', '      int err = l->readdir_filler((char *) l->buf, name, (struct stat *) &st, 0, 0);\n'],
  // init gets the configuration too; the adapters come before the mount that installs them.
  ['static void * fuse_native_init (struct fuse_conn_info *conn) {\n', 'static void * fuse_native_init (struct fuse_conn_info *conn, struct fuse_config *cfg) {\n'],
  [
    'static void* start_fuse_thread (void *data) {\n',
    `// libfuse 3's signatures over fuse-native's operations (cairn)

static int cairn3_fgetattr_js = 0;
static int cairn3_ftruncate_js = 0;
static int cairn3_init_js = 0;

// With a handle (fstat, and libfuse's own lookup after a create) the handle's attributes: the
// file as this mount has it open, written data included.
static int cairn3_getattr (const char *path, struct stat *stat, struct fuse_file_info *fi) {
  if (fi != NULL && cairn3_fgetattr_js) return fuse_native_fgetattr(path, stat, fi);
  return fuse_native_getattr(path, stat);
}

static int cairn3_truncate (const char *path, off_t size, struct fuse_file_info *fi) {
  if (fi != NULL && cairn3_ftruncate_js) return fuse_native_ftruncate(path, size, fi);
  return fuse_native_truncate(path, size);
}

static int cairn3_chmod (const char *path, mode_t mode, struct fuse_file_info *fi) {
  return fuse_native_chmod(path, mode);
}

static int cairn3_chown (const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
  return fuse_native_chown(path, uid, gid);
}

static int cairn3_utimens (const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  return fuse_native_utimens(path, tv);
}

// RENAME_NOREPLACE goes on to JavaScript (the masters check it as they rename); RENAME_EXCHANGE
// and RENAME_WHITEOUT are not offered (docs/fuse.md): refused as a file system without them does.
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
static int cairn3_rename (const char *from, const char *to, unsigned int flags) {
  if ((flags & ~RENAME_NOREPLACE) != 0) return -EINVAL;
  return fuse_native_rename(from, to, flags);
}

static void * cairn3_init (struct fuse_conn_info *conn, struct fuse_config *cfg) {
  // A write's bytes read straight into the thread's buffer: with splice they went through a pipe
  // and were copied once more into a fresh allocation (fuse-native has no write_buf).
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  // A file's st_ino is its cairn inode id, the same under every name (hard links): an option in
  // libfuse 2 (-o use_ino), only the configuration's in libfuse 3.
  cfg->use_ino = 1;
  if (cairn3_init_js) return fuse_native_init(conn, cfg);
  return fuse_get_context()->private_data;
}

static void* start_fuse_thread (void *data) {
`,
  ],
  [
    '  fuse_loop_mt(ft->fuse);\n\n  fuse_unmount(ft->mnt, ft->ch);\n  fuse_session_remove_chan(ft->ch);\n  fuse_destroy(ft->fuse);\n',
    // libfuse 3 stops at 10 threads unless told: one slow chunk must not hold up every other operation.
    '  struct fuse_loop_config *config = fuse_loop_cfg_create();\n  fuse_loop_cfg_set_max_threads(config, 256);\n  fuse_loop_mt(ft->fuse, config);\n  fuse_loop_cfg_destroy(config);\n\n  fuse_unmount(ft->fuse);\n  fuse_destroy(ft->fuse);\n',
  ],
  ['  if (implemented[op_truncate]) ops.truncate = fuse_native_truncate;\n  if (implemented[op_ftruncate]) ops.ftruncate = fuse_native_ftruncate;\n', '  cairn3_ftruncate_js = implemented[op_ftruncate];\n  if (implemented[op_truncate]) ops.truncate = cairn3_truncate;\n'],
  ['  if (implemented[op_getattr]) ops.getattr = fuse_native_getattr;\n  if (implemented[op_fgetattr]) ops.fgetattr = fuse_native_fgetattr;\n', '  cairn3_fgetattr_js = implemented[op_fgetattr];\n  if (implemented[op_getattr]) ops.getattr = cairn3_getattr;\n'],
  ['  if (implemented[op_chown]) ops.chown = fuse_native_chown;\n  if (implemented[op_chmod]) ops.chmod = fuse_native_chmod;\n', '  if (implemented[op_chown]) ops.chown = cairn3_chown;\n  if (implemented[op_chmod]) ops.chmod = cairn3_chmod;\n'],
  // libfuse 3 passes a change of one time only (UTIME_OMIT) always.
  ['  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;\n  ops.flag_utime_omit_ok = 1;\n', '  if (implemented[op_utimens]) ops.utimens = cairn3_utimens;\n'],
  ['  if (implemented[op_rename]) ops.rename = fuse_native_rename;\n', '  if (implemented[op_rename]) ops.rename = cairn3_rename;\n'],
  // rename hands JavaScript its flags after the two paths (only RENAME_NOREPLACE gets this far).
  ['  mode_t caller_umask;\n', '  mode_t caller_umask;\n  unsigned int cairn_rename_flags;\n'],
  [
    'FUSE_METHOD_VOID(rename, 2, 0, (const char *path, const char *dest), {\n  l->path = path;\n  l->dest = dest;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_string_utf8(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));\n})\n',
    'FUSE_METHOD_VOID(rename, 3, 0, (const char *path, const char *dest, unsigned int flags), {\n  l->path = path;\n  l->dest = dest;\n  l->cairn_rename_flags = flags;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_string_utf8(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));\n  napi_create_uint32(env, l->cairn_rename_flags, &(argv[4]));\n})\n',
  ],
  ['  if (implemented[op_init]) ops.init = fuse_native_init;\n', '  cairn3_init_js = implemented[op_init];\n  ops.init = cairn3_init;\n'],
  [
    '  struct fuse_args args = FUSE_ARGS_INIT(_argc, _argv);\n  struct fuse_chan *ch = fuse_mount(mnt, &args);\n\n  if (ch == NULL) {\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n\n  struct fuse *fuse = fuse_new(ch, &args, &ops, sizeof(struct fuse_operations), ft);\n',
    '  struct fuse_args args = FUSE_ARGS_INIT(_argc, _argv);\n  struct fuse *fuse = fuse_new(&args, &ops, sizeof(struct fuse_operations), ft);\n\n  if (fuse == NULL || fuse_mount(fuse, mnt) != 0) {\n    if (fuse != NULL) fuse_destroy(fuse);\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n',
  ],
  ['  ft->ch = ch;\n', ''],
];

let source = readFileSync(path.join(fuseDir, 'fuse-native.c'), 'utf8');
for (const [from, to] of [...edits, ...namesEdits, ...releaseEdits, ...createEdits, ...libfuse3Edits]) {
  if (!source.includes(from)) {
    skipBuild(say, `fuse-native.c is not the version this patch was made for (no "${from.trim().slice(0, 60)}"): keeping the prebuilt addon`);
  }
  source = source.replace(from, to);
}

const headers = [nodeHeadersDir(), path.dirname(require.resolve('napi-macros/napi-macros.h', { paths: [fuseDir] })), '/usr/include/fuse3'];
const libfuse = ['/lib/x86_64-linux-gnu/libfuse3.so.3', '/usr/lib/x86_64-linux-gnu/libfuse3.so.3', '/lib/aarch64-linux-gnu/libfuse3.so.3', '/usr/lib/libfuse3.so.3'].find((p) => existsSync(p));
const missing = [...missingForAddon(headers), ...(libfuse === undefined ? ['libfuse3.so.3 (Debian libfuse3-3)'] : [])];
if (missing.length > 0) skipBuild(say, `cannot build (missing ${missing.join('; ')}): keeping fuse-native's prebuilt addon; run scripts/install-system-packages.sh as root, then this again`);

const work = path.join(fuseDir, 'build', 'cairn');
mkdirSync(work, { recursive: true });
mkdirSync(path.dirname(out), { recursive: true });
const c = path.join(work, 'fuse-native.c');
writeFileSync(c, source);
execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-D_FILE_OFFSET_BITS=64', ...headers.map((h) => `-I${h}`), c, '-o', out, libfuse!, '-lpthread'], { stdio: 'inherit' });
say(`built ${out} on libfuse 3 (operations carry their caller; utimens passes mtime, UTIME_OMIT and UTIME_NOW; create passes O_EXCL; times before 1970 work; a create answers its fgetattr, clean flush and clean release, and a held directory's creates are answered in C; held directories\' getattr and lookups of absent names; xattrs other than user.* refused in C; rename passes RENAME_NOREPLACE on and refuses other renameat2 flags with EINVAL)`);
