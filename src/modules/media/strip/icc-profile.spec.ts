import sharp from 'sharp';
import {
  junkProfile,
  profileWithTrailer,
  srgbProfile,
} from '../../../../test/fixtures/images/image-fixtures';
import { isAcceptableIccProfile } from './icc-profile';

describe(isAcceptableIccProfile.name, () => {
  let srgb: Buffer;
  beforeAll(async () => {
    srgb = await srgbProfile();
  });

  it('should accept real profiles: libvips sRGB, Display P3 and its ~1 MB CMYK profile under a cap that fits', async () => {
    expect(isAcceptableIccProfile(srgb, 65536)).toBe(true);
    for (const name of ['p3', 'cmyk']) {
      const carrier = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#888' } })
        .withIccProfile(name)
        .jpeg()
        .toBuffer();
      const { icc } = await sharp(carrier).metadata();
      expect(isAcceptableIccProfile(icc!, 2 * 1024 * 1024)).toBe(true);
    }
  });

  it('should refuse a profile over the cap, junk, a truncated one, a zero-tag one and one with a payload after its tags', () => {
    expect(isAcceptableIccProfile(srgb, srgb.length - 1)).toBe(false);
    expect(isAcceptableIccProfile(junkProfile(4096), 65536)).toBe(false);
    expect(isAcceptableIccProfile(srgb.subarray(0, 300), 65536)).toBe(false);
    const noTags = Buffer.from(srgb.subarray(0, 132));
    noTags.writeUInt32BE(132, 0);
    noTags.writeUInt32BE(0, 128);
    expect(isAcceptableIccProfile(noTags, 65536)).toBe(false);
    expect(isAcceptableIccProfile(profileWithTrailer(srgb, 60_000), 65536)).toBe(false);
    const badVersion = Buffer.from(srgb);
    badVersion[8] = 9;
    expect(isAcceptableIccProfile(badVersion, 65536)).toBe(false);
  });
});
