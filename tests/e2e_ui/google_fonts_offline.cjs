// Next.js's own hook for builds without Google Fonts (NEXT_FONT_GOOGLE_MOCKED_RESPONSES): every
// font CSS request gets a face that uses the font if installed locally, so an offline
// `next build` of agent-chat-ui succeeds; the page falls back to the system sans-serif.
const css = `/* latin */
@font-face {
  font-family: 'Inter';
  font-style: normal;
  font-weight: 100 900;
  font-display: swap;
  src: local('Inter');
}
`;
module.exports = new Proxy({}, { get: () => css });
