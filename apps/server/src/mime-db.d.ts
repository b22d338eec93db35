// The part of mime-db (JSON behind module.exports, no types of its own) that compression reads.
declare module 'mime-db' {
  const db: Readonly<Record<string, { compressible?: boolean }>>;
  export default db;
}
