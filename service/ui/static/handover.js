// The staff pages' only script: the NHS.UK frontend's components (header menu, skip link …). No inline script.
import { initAll } from './nhsuk/nhsuk-frontend.min.js'

document.body.classList.add('js-enabled', 'nhsuk-frontend-supported')
initAll()
