import fs from 'node:fs';
import path from 'node:path';
import Sqlite from 'better-sqlite3';

/** Another process holds the data folder (the embedded log and SQLite store are one writer's). */
export class DataDirInUse extends Error {
  override readonly name = 'DataDirInUse';
}

export interface DataDirLock {
  release(): void;
}

const LOCK_FILE = 'minipush.lock';
const OWNER_FILE = 'minipush.lock.owner';

/**
 * Takes the data folder for this process: an exclusive SQLite lock on a file of its own, which
 * the operating system drops when the process ends however it ends, so a killed server never
 * leaves a stale lock. The owner's pid and start time sit beside it, for the refusal message.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Sqlite(path.join(dataDir, LOCK_FILE), { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // A write transaction takes the lock; in exclusive mode it is kept after the commit.
    db.exec('CREATE TABLE IF NOT EXISTS held (at INTEGER)');
    db.exec('BEGIN EXCLUSIVE; DELETE FROM held; INSERT INTO held VALUES (0); COMMIT;');
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') throw err;
    throw new DataDirInUse(
      `the data folder ${dataDir} is in use by another MiniPush process (${owner(dataDir)}); ` +
        'stop it, or give this one a folder of its own with --data-dir / MINIPUSH_DATA_DIR',
    );
  }
  const ownerFile = path.join(dataDir, OWNER_FILE);
  fs.writeFileSync(ownerFile, `${process.pid} ${new Date().toISOString()}\n`);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      fs.rmSync(ownerFile, { force: true });
      db.close();
    },
  };
}

function owner(dataDir: string): string {
  try {
    const [pid, since] = fs.readFileSync(path.join(dataDir, OWNER_FILE), 'utf8').trim().split(' ');
    return `pid ${pid}, since ${since}`;
  } catch {
    return 'pid unknown';
  }
}
