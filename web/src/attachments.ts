// Images attached to chat messages: the client-side limits, reading files
// into data: URLs, and the OpenAI content parts a message with images is
// sent as.

// The limits, chosen to fit mica serve's defaults: a request body is at
// most 8 MiB (and a saved conversation's messages 8 MiB), and every turn
// sends the conversation's images again, so all the images of a
// conversation together stay under maxTotalChars of data: URLs.
export const maxImages = 8; // per message
export const maxImageBytes = 4 << 20; // per file
export const maxTotalChars = 7 << 20; // data: URL characters in one conversation
export const imageTypes = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

export interface Candidate {
  name: string;
  type: string;
  size: number;
}

function mb(n: number): string {
  return (n / (1 << 20)).toFixed(n < 1 << 20 ? 2 : 1) + ' MB';
}

// admit decides which of the candidate files may be attached to a message
// that already has `have` images: it returns how many of the first files
// to take (in order, skipping none silently) and the reasons the others
// were refused, as sentences.
export function admit(files: Candidate[], have: number): { take: boolean[]; problems: string[] } {
  const take: boolean[] = [];
  const problems: string[] = [];
  let n = have;
  for (const f of files) {
    const name = f.name || 'the pasted image';
    if (!imageTypes.includes(f.type)) {
      problems.push(`${name} is not a PNG, JPEG, GIF or WebP picture.`);
      take.push(false);
    } else if (f.size > maxImageBytes) {
      problems.push(`${name} is ${mb(f.size)}; an image may be at most ${mb(maxImageBytes)}.`);
      take.push(false);
    } else if (n >= maxImages) {
      problems.push(`${name} was not attached: a message may hold at most ${maxImages} images.`);
      take.push(false);
    } else {
      take.push(true);
      n++;
    }
  }
  return { take, problems };
}

// fitsTotal reports whether images (data: URLs) together with those
// already in the conversation stay within maxTotalChars.
export function fitsTotal(existing: string[], added: string[]): boolean {
  let n = 0;
  for (const u of existing) n += u.length;
  for (const u of added) n += u.length;
  return n <= maxTotalChars;
}

export const tooMuchInTotal = `The conversation's images would be over ${mb(maxTotalChars)} in all (every message sends them again): start a new chat for more images.`;

// readDataURL reads a file into a data: URL.
export function readDataURL(f: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error ?? new Error('The file could not be read.'));
    r.readAsDataURL(f);
  });
}

// content is a user message's content in the OpenAI shape: the text alone,
// or the text followed by one image_url part per image.
export function content(text: string, images?: string[]): string | unknown[] {
  if (!images?.length) return text;
  const parts: unknown[] = [];
  if (text) parts.push({ type: 'text', text });
  for (const url of images) parts.push({ type: 'image_url', image_url: { url } });
  return parts;
}
