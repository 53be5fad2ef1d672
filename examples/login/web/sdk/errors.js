// The errors the SDK reports. Every error that ends a session carries what
// the caller needs to decide what to do next.
import { Code, codeName, codeText } from './wire.js';
/** The base class of every error the SDK throws or reports. */
export class XserverError extends Error {
    constructor(message, options) {
        super(message, options);
        this.name = 'XserverError';
    }
}
/**
 * KickError: the gateway ended the session, or refused it, with a code
 * (PROTOCOL.md §3.3): a ClientKick ('kick'), a refused ClientLogin
 * ('login'), a refused ClientResume ('resume'), or the SDK itself gave up
 * ('client': the resume window passed without reaching any gateway, code
 * 15 Expired). Compare `code` with the Code constants.
 */
export class KickError extends XserverError {
    code;
    reason;
    source;
    constructor(code, reason, source) {
        super(`${source === 'login' ? 'login refused' : source === 'resume' ? 'resume refused' : 'session ended'}: ${codeText(code)} (code ${code})${reason && reason !== codeText(code) ? `: ${reason}` : ''}`);
        this.name = 'KickError';
        this.code = code;
        this.reason = reason;
        this.source = source;
    }
    /** The code's name, such as "Duplicate". */
    get codeName() {
        return codeName(this.code);
    }
    /**
     * relogin says whether a fresh login (a new ticket) is the way back. It is
     * false for Duplicate (7) and TakenOver (14): another client of this
     * account holds the session, and reconnecting would kick it in turn.
     */
    get relogin() {
        return this.code !== Code.Duplicate && this.code !== Code.TakenOver;
    }
}
/** LoginError: the login service refused a login or a gateway lookup (HTTP status and its message). */
export class LoginError extends XserverError {
    status;
    /** The service's own words (its JSON error), fit to show to the player. */
    detail;
    /** Seconds to wait before retrying (from Retry-After), when the service said so. */
    retryAfter;
    constructor(status, detail, retryAfter) {
        super(`login service: ${status}: ${detail}`);
        this.name = 'LoginError';
        this.status = status;
        this.detail = detail;
        this.retryAfter = retryAfter;
    }
}
/** ConnectionError: a connection could not be opened, was lost where no resume is possible, or broke the protocol. */
export class ConnectionError extends XserverError {
    constructor(message, options) {
        super(message, options);
        this.name = 'ConnectionError';
    }
}
/** ClosedError: the client was closed (by close()), or the session is over. */
export class ClosedError extends XserverError {
    constructor(message = 'client closed') {
        super(message);
        this.name = 'ClosedError';
    }
}
