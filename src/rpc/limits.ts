// Every bound of the RPC layer, in one place: sizes, counts and times, each with its unit.

/** Largest frame on the wire, length prefix included (option `frameBytesMax`). */
export const frameBytesMaxDefault = 64 * 2 ** 20;
/** Largest frame a server accepts before the peer has authenticated: only a tiny 'auth' fits. */
export const handshakeFrameBytesMax = 1024;
/** Largest msgpack header; headers carry ids, a method name and an error, never data. */
export const headerBytesMax = 64 * 1024;
/** Longest method name, in UTF-16 code units. */
export const methodLengthMax = 128;
/** Longest error code and message a server sends; longer messages are cut. */
export const errorCodeLengthMax = 128;
export const errorMessageLengthMax = 4096;

/** Calls a client keeps in flight, waiting for a connection included (option `inflightMax`). */
export const inflightMaxDefault = 1024;
/** Handlers a server runs at once per connection (option `inflightPerConnectionMax`). */
export const inflightPerConnectionMaxDefault = 1024;
/** Connections a server keeps open at once (option `connectionsMax`); a new one beyond it is refused with CAIRN_OVERLOADED. */
export const connectionsMaxDefault = 4096;
/** Connections a server keeps open from one peer address (IP) at once (option `connectionsPerAddressMax`). */
export const connectionsPerAddressMaxDefault = 1024;
/**
 * Bytes of clients' requests a server holds in memory at once (option `requestBytesMax`): frames
 * being received and requests whose handlers still run; methods registered as internal (traffic
 * between cairn's own processes) are not counted. A request that does not fit waits, its
 * connection not read, for room; then it is stored, or refused with CAIRN_OVERLOADED.
 */
export const requestBytesMaxDefault = 256 * 2 ** 20;
/** How long a request waits for room in requestBytesMax before it is refused (option `admissionWaitMs`). */
export const admissionWaitMsDefault = 1_000;

/** Deadline of a call without `timeoutMs`, and of a request whose header has none. */
export const timeoutMsDefault = 10_000;
/** Longest deadline a call may ask for: a longer one is a bug (a lost unit conversion). */
export const timeoutMsMax = 3_600_000;
/** TCP connect plus handshake (option `connectTimeoutMs`). */
export const connectTimeoutMsDefault = 5_000;
/** Delay before reconnect attempt n (n >= 1 failed attempts in a row): min * 2^(n-1), capped at max. */
export const reconnectBackoffMsDefault = { min: 50, max: 5_000 } as const;
/** How long a server waits for a connecting peer to authenticate (option `authTimeoutMs`). */
export const authTimeoutMsDefault = 5_000;
/**
 * A server closes a connection that leaves a frame half sent for this long without another byte
 * (option `frameStallMs`): a peer that stalls mid-frame would otherwise hold its buffer forever.
 */
export const frameStallMsDefault = 30_000;
/**
 * A server closes a connection with no call running and no frame received for this long (option
 * `idleTimeoutMs`); clients reconnect on their next call, and peers that heartbeat never go idle.
 */
export const idleTimeoutMsDefault = 10 * 60_000;
/** After sending a last error frame, how long a socket waits for the peer to close before it is destroyed. */
export const closeLingerMs = 1_000;

/**
 * Bytes queued for a peer that has not read them, beyond which a server stops reading that peer's
 * requests until they drain, and a client drops one-way messages (option `sendBacklogBytesMax`):
 * a peer that stops reading (paused, partitioned, hostile) would otherwise grow the sender's memory
 * without bound.
 */
export const sendBacklogBytesMaxDefault = 64 * 2 ** 20;

/** Frames this large are received into a pool (RpcClientOptions.receiveBuffers, RpcServerOptions.receive), if there is one; smaller ones are cheap to allocate. */
export const pooledFrameBytesMin = 256 * 1024;

/** Bodies up to this size are copied next to the header so that a frame is one write. */
export const bodyInlineBytesMax = 4096;
export const nonceBytes = 32;
/** 2: one-way 'msg' frames. */
export const protocolVersion = 2;
