import { describe, expect, it } from 'vitest';
import { MessageRate, decideSendMessage } from '../../src/commands/send-message.js';

const limits = { e2eEnabled: true, e2eMaxBodyBytes: 16, e2eRatePerMinute: 2 };

describe('decideSendMessage', () => {
  it('should turn a message into a publish sent by the user', () => {
    const publish = decideSendMessage(5, { to: [6], body: 'hi' }, limits, new MessageRate(), 0);
    expect(publish).toEqual({ to: [6], body: 'hi', from: 5 });
  });

  it('should refuse when end-to-end messages are off', () => {
    expect(() =>
      decideSendMessage(
        5,
        { to: [6], body: 'hi' },
        { ...limits, e2eEnabled: false },
        new MessageRate(),
        0,
      ),
    ).toThrow(expect.objectContaining({ code: 'MINIPUSH_FORBIDDEN' }));
  });

  it('should refuse a body over the message limit', () => {
    expect(() =>
      decideSendMessage(5, { to: [6], body: 'x'.repeat(20) }, limits, new MessageRate(), 0),
    ).toThrow(expect.objectContaining({ code: 'MINIPUSH_BODY_TOO_LARGE', field: 'body' }));
  });

  it('should allow the rate per minute and say when the next one may go', () => {
    // Given a user who sent the two messages a minute allows
    const rate = new MessageRate();
    decideSendMessage(5, { to: [6], body: 1 }, limits, rate, 0);
    decideSendMessage(5, { to: [6], body: 2 }, limits, rate, 10_000);
    // When a third follows 20 s into the minute
    const third = () => decideSendMessage(5, { to: [6], body: 3 }, limits, rate, 20_000);
    // Then it is refused with the wait, while another user is not held back
    expect(third).toThrow(expect.objectContaining({ code: 'MINIPUSH_RATE_LIMITED' }));
    expect(third).toThrow(/try again in 40 s/);
    expect(() => decideSendMessage(8, { to: [6], body: 1 }, limits, rate, 20_000)).not.toThrow();
    // And a new minute allows it again
    expect(() => decideSendMessage(5, { to: [6], body: 4 }, limits, rate, 60_000)).not.toThrow();
  });
});
