// The client library: how every front-end reaches the masters.

export { MasterClient, type MasterClientOptions } from './master-client.ts';
