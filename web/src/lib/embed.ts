/** The embed snippets people paste into a README, a web page or a forum. */
export function embedSnippets(url: string, name: string): { label: string; text: string }[] {
  const alt = name.replace(/[[\]"<>]/g, '');
  return [
    { label: 'Markdown', text: `![${alt}](${url})` },
    { label: 'HTML', text: `<img src="${url}" alt="${alt}">` },
    { label: 'BBCode', text: `[img]${url}[/img]` },
  ];
}

/** The same variant URL at another width (thumbnail_url is `…?w=320&format=auto`). */
export function variantUrl(thumbnailUrl: string, width: number): string {
  const url = new URL(thumbnailUrl, window.location.origin);
  url.searchParams.set('w', String(width));
  return url.toString();
}
