// The SDK's version, sent in Hello.sdk.
export const VERSION = "0.1.0";
export const SDK = `pfc-node/${VERSION}`;
