// Which certificates to ask for: one per site, holding the names of http.ssl.acme.domains that
// site answers for (so a name that cannot be validated only holds back its own site). Names no site
// claims (served by the default site) share one certificate. CAs cap the names of one certificate
// (Let's Encrypt: 100), so a larger group is split.

export interface PlannedCertificate {
  /** its first name; the store's folder and the status line use it */
  name: string;
  domains: string[];
  /** the site these names belong to, or null for the default site */
  site: string | null;
}

export interface SiteHosts {
  name: string;
  /** null for the default site */
  hosts: readonly string[] | null;
}

export const MAX_NAMES_PER_CERTIFICATE = 100;

export function planCertificates(domains: readonly string[], sites: readonly SiteHosts[]): PlannedCertificate[] {
  const groups = new Map<string | null, string[]>();
  for (const domain of domains) {
    const site = siteOf(domain, sites);
    const group = groups.get(site) ?? [];
    if (!group.includes(domain)) group.push(domain);
    groups.set(site, group);
  }
  const planned: PlannedCertificate[] = [];
  for (const [site, names] of groups) {
    for (let i = 0; i < names.length; i += MAX_NAMES_PER_CERTIFICATE) {
      const chunk = names.slice(i, i + MAX_NAMES_PER_CERTIFICATE);
      planned.push({ name: chunk[0]!, domains: chunk, site });
    }
  }
  return planned;
}

/** The site answering for `domain`: an exact host first, then a wildcard ("*.example.com"). */
function siteOf(domain: string, sites: readonly SiteHosts[]): string | null {
  for (const site of sites) if (site.hosts?.includes(domain) === true) return site.name;
  for (const site of sites) for (const host of site.hosts ?? []) if (wildcardMatches(host, domain)) return site.name;
  return null;
}

/** Whether a wildcard host ("*.example.com") matches `domain`: one label in its place ("www.example.com"). */
export function wildcardMatches(host: string, domain: string): boolean {
  return host.startsWith('*.') && domain.endsWith(host.slice(1)) && !domain.slice(0, -host.length + 1).includes('.');
}
