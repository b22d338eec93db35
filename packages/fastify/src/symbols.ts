// Properties the plugin puts on objects it does not own (DESIGN.md: private state).

/** the request's ClientInfo (network/client-info.ts), on the raw request */
export const kClientInfo: unique symbol = Symbol('warmpool.clientInfo');
/** the resolver that computed it: another resolver (other trusted_subnets) computes its own */
export const kClientInfoResolver: unique symbol = Symbol('warmpool.clientInfoResolver');
