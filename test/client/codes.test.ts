import { describe, expect, it } from 'vitest';
import { DisconnectCode, shouldReconnect } from '../../src/client/codes.js';
import { CLOSE_CODES } from '../../src/protocol/websocket.js';

describe('DisconnectCode', () => {
  it('should mirror every close code of the hub with the same number', () => {
    expect({
      normal: DisconnectCode.Normal,
      unsupportedData: DisconnectCode.UnsupportedData,
      messageTooBig: DisconnectCode.MessageTooBig,
      serviceRestart: DisconnectCode.ServiceRestart,
      tooSlow: DisconnectCode.TooSlow,
      pingTimeout: DisconnectCode.PingTimeout,
      unauthenticated: DisconnectCode.Unauthenticated,
      tokenExpired: DisconnectCode.TokenExpired,
      kickedOff: DisconnectCode.KickedOff,
      forbidden: DisconnectCode.Forbidden,
    }).toEqual(CLOSE_CODES);
  });

  it('should reconnect after every code but kickoff, forbidden and a client close', () => {
    const final = Object.entries(DisconnectCode)
      .filter(([, code]) => !shouldReconnect(code))
      .map(([name]) => name);
    expect(final.sort()).toEqual(['ClientClosed', 'Forbidden', 'KickedOff']);
    expect(shouldReconnect(4999)).toBe(false);
    expect(shouldReconnect(5000)).toBe(true);
  });
});
