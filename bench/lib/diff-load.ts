/** What every diff load program is told: whose feeds, how big, for how long. */
export interface DiffLoadSetup {
  /** Signs the users' JWTs. */
  readonly secret: string;
  readonly users: number;
  readonly firstUid: number;
  readonly eventsPerUser: number;
  readonly pageSize: number;
  readonly seconds: number;
}
